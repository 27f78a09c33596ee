"""The admin page's two languages: English (the texts in the templates) and Finnish (this table).

A text is looked up by its English wording, as gettext does, so a template reads as English; a
test checks that every text the templates and pages use has its Finnish translation. The language
is chosen by `?lang=` (remembered in a cookie), then the cookie, then Accept-Language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LANGUAGES = ("en", "fi")
DEFAULT = "en"
COOKIE = "psop_admin_lang"

FI: dict[str, str] = {
    # layout
    "psop-hub administration": "psop-hub ylläpito",
    "Messages": "Sanomat",
    "Invoices waiting": "Odottavat laskut",
    "Replay jobs": "Uudelleenajot",
    "Audit log": "Tarkastusloki",
    "Sign out": "Kirjaudu ulos",
    "Signed in as {name}": "Kirjautunut: {name}",
    "Times are Helsinki time.": "Ajat ovat Suomen aikaa.",
    "Language": "Kieli",
    "Skip to content": "Siirry sisältöön",
    # sign-in
    "Sign in": "Kirjaudu sisään",
    "Admin client name": "Ylläpitoasiakkaan nimi",
    "Secret": "Salaisuus",
    "Sign in with an admin client's name and secret (hub clients add NAME --role admin).": (
        "Kirjaudu ylläpitoasiakkaan nimellä ja salaisuudella (hub clients add NIMI --role admin)."
    ),
    "Unknown name or secret, or not an admin client.": (
        "Tuntematon nimi tai salaisuus, tai asiakas ei ole ylläpitäjä."
    ),
    "You have signed out.": "Olet kirjautunut ulos.",
    "Your session has ended; sign in again.": "Istuntosi on päättynyt; kirjaudu uudelleen.",
    # search
    "Search messages": "Hae sanomia",
    "Status": "Tila",
    "Type": "Tyyppi",
    "Sender": "Lähettäjä",
    "Organiser": "Järjestäjä",
    "Provider": "Palveluntuottaja",
    "Received from": "Vastaanotettu alkaen",
    "Received until": "Vastaanotettu asti",
    "Search text": "Hakuteksti",
    "Message id, correlation id, voucher, order or event number": (
        "Sanoman tunniste, korrelaatiotunniste, setelin, tilauksen tai toteuman numero"
    ),
    "Search": "Hae",
    "Clear": "Tyhjennä",
    "any": "kaikki",
    "{total} messages": "{total} sanomaa",
    "No messages match.": "Hakuehtoja vastaavia sanomia ei ole.",
    "Count by status": "Määrät tiloittain",
    "Received": "Vastaanotettu",
    "Updated": "Päivitetty",
    "Message id": "Sanoman tunniste",
    "Attempts": "Yritykset",
    "Last error": "Viimeisin virhe",
    "Previous": "Edellinen",
    "Next": "Seuraava",
    "Page {page} of {pages}": "Sivu {page}/{pages}",
    "Replay these messages…": "Aja nämä sanomat uudelleen…",
    # statuses
    "accepted": "vastaanotettu",
    "applied": "käsitelty",
    "retrying": "yritetään uudelleen",
    "rejected": "hylätty",
    "superseded": "vanhentunut",
    "failed": "epäonnistunut",
    "replaced": "korvattu",
    # one message
    "Message": "Sanoma",
    "Hub id": "Keskittimen tunniste",
    "Correlation id": "Korrelaatiotunniste",
    "Errors": "Virheet",
    "Journey": "Kulku",
    "Step": "Vaihe",
    "Detail": "Tiedot",
    "Time": "Aika",
    "Payload": "Sisältö",
    "Personal identity codes are masked.": "Henkilötunnukset on peitetty.",
    "Show personal identity codes": "Näytä henkilötunnukset",
    "Personal identity codes are shown; this read is in the audit log.": (
        "Henkilötunnukset näytetään; tämä luku on kirjattu tarkastuslokiin."
    ),
    "Replay": "Aja uudelleen",
    "Edit and replay…": "Muokkaa ja aja uudelleen…",
    "Replay of": "Uudelleenajo sanomasta",
    "Replayed as": "Ajettu uudelleen sanomana",
    "Only a failed or rejected message can be replayed.": (
        "Vain epäonnistuneen tai hylätyn sanoman voi ajaa uudelleen."
    ),
    "The message was queued again.": "Sanoma on jonossa uudelleen.",
    "Nothing was replayed: {reason}": "Mitään ei ajettu uudelleen: {reason}",
    "No such message.": "Sanomaa ei ole.",
    "The edited copy was accepted and queued; the original is now replaced.": (
        "Muokattu kopio otettiin vastaan ja on jonossa; alkuperäisen tila on nyt korvattu."
    ),
    "Voucher, order or settlement": "Seteli, tilaus tai tilitys",
    "Sent": "Lähetetty",
    # edit
    "Edit and replay": "Muokkaa ja aja uudelleen",
    "The edited copy becomes a new message linked to this one; the original keeps its payload and becomes replaced.": (  # noqa: E501
        "Muokatusta kopiosta tulee uusi sanoma, joka linkitetään tähän; alkuperäinen säilyttää "
        "sisältönsä ja sen tila on korvattu."
    ),
    "Payload (JSON)": "Sisältö (JSON)",
    "Reason": "Syy",
    "Check and replay": "Tarkista ja aja uudelleen",
    "The edit was refused; nothing was sent.": "Muokkaus hylättiin; mitään ei lähetetty.",
    "The payload is not valid JSON: {error}": "Sisältö ei ole kelvollista JSONia: {error}",
    "The payload must be a JSON object.": "Sisällön on oltava JSON-olio.",
    "Cancel": "Peruuta",
    # bulk replay
    "Replay a set of messages": "Aja joukko sanomia uudelleen",
    "{count} messages match this filter and would be replayed.": (
        "{count} sanomaa vastaa hakuehtoja ja ajettaisiin uudelleen."
    ),
    "Only failed and rejected messages are replayed; the set is frozen now: messages that change state before the job reaches them are skipped.": (  # noqa: E501
        "Vain epäonnistuneet ja hylätyt sanomat ajetaan uudelleen; joukko kiinnitetään nyt: "
        "sanomat, joiden tila muuttuu ennen kuin ajo ehtii niihin, ohitetaan."
    ),
    "Filter": "Hakuehdot",
    "A sample of them": "Otos niistä",
    "Replay {count} messages": "Aja {count} sanomaa uudelleen",
    "{count} failed or rejected messages match this filter now.": (
        "{count} epäonnistunutta tai hylättyä sanomaa vastaa hakuehtoja nyt."
    ),
    "Count and freeze the set…": "Laske ja kiinnitä joukko…",
    "Why are they replayed? (required, kept in the audit log)": (
        "Miksi ne ajetaan uudelleen? (pakollinen, tallennetaan tarkastuslokiin)"
    ),
    "Give a reason.": "Anna syy.",
    "Nothing to replay: no failed or rejected message matches.": (
        "Ei uudelleenajettavaa: yksikään epäonnistunut tai hylätty sanoma ei vastaa hakuehtoja."
    ),
    "Back to the search": "Takaisin hakuun",
    # jobs
    "Replay job": "Uudelleenajo",
    "Job": "Ajo",
    "Started by": "Käynnistäjä",
    "Started": "Aloitettu",
    "Finished": "Valmis",
    "Matched": "Vastaavia",
    "Queued": "Jonoon",
    "Skipped": "Ohitettu",
    "Progress": "Edistyminen",
    "Created": "Luotu",
    "Skipped: already applied": "Ohitettu: jo käsitelty",
    "Skipped: no longer failed": "Ohitettu: ei enää epäonnistunut",
    "The queued messages now": "Jonoon laitetut sanomat nyt",
    "planned": "suunniteltu",
    "queued": "jonossa",
    "running": "käynnissä",
    "done": "valmis",
    "This page refreshes itself until the job is done.": "Sivu päivittyy itsestään, kunnes ajo on valmis.",
    "No replay jobs yet.": "Uudelleenajoja ei ole vielä.",
    "No such job.": "Ajoa ei ole.",
    # settlements waiting
    "Settlements whose invoice waits for invoicing details": (
        "Tilitykset, joiden lasku odottaa laskutustietoja"
    ),
    "Settlement": "Tilitys",
    "Month": "Kuukausi",
    "Amount": "Summa",
    "Missing details": "Puuttuvat tiedot",
    "Since": "Alkaen",
    "Every settlement's invoice has been written.": "Kaikkien tilitysten laskut on kirjoitettu.",
    "Record the details with hub parties set or PUT /api/v1/parties/{business_id}.": (
        "Tallenna tiedot komennolla hub parties set tai PUT /api/v1/parties/{business_id}."
    ),
    # audit
    "Who": "Kuka",
    "What": "Mitä",
    "Why": "Miksi",
    # errors
    "The form's security token is missing or wrong: nothing was done. Reload the page and try again.": (
        "Lomakkeen suojaustunniste puuttuu tai on väärä: mitään ei tehty. Lataa sivu uudelleen ja yritä "
        "uudelleen."
    ),
    "Not found": "Ei löytynyt",
    "Refused": "Torjuttu",
    "The hub cannot answer right now; try again in a moment.": (
        "Keskitin ei voi vastata juuri nyt; yritä hetken kuluttua uudelleen."
    ),
    "Something went wrong": "Jokin meni vikaan",
    "Invalid input": "Virheellinen syöte",
}


def pick(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page language: `?lang=`, then the cookie, then the first supported Accept-Language."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return DEFAULT


def translator(lang: str) -> Callable[..., str]:
    """`_(text, **values)`: the text in `lang` with `{name}` placeholders filled in."""
    table = FI if lang == "fi" else {}

    def _(text: str, **values: Any) -> str:
        wording = table.get(text, text)
        return wording.format(**values) if values else wording

    return _
