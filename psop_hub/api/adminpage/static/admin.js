// psop-hub admin page: progressive enhancement only; every page works without this script.
// The edit-and-replay form is checked here before it is sent (the server checks it again).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-json-check]");
  if (!form) { return; }
  var area = form.querySelector("textarea[name=payload]");
  var out = document.getElementById("payload-check");
  form.addEventListener("submit", function (event) {
    var problem = "";
    try {
      var value = JSON.parse(area.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        problem = form.getAttribute("data-not-object");
      }
    } catch (err) {
      problem = form.getAttribute("data-not-json") + " " + err.message;
    }
    if (problem) {
      event.preventDefault();
      out.textContent = problem;
      out.hidden = false;
      area.setAttribute("aria-invalid", "true");
      area.focus();
    }
  });
});
