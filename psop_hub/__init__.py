"""psop-hub: integration hub for Finnish service-voucher and purchased-service systems."""
