/* Small enhancements of the portal's admin pages (a static file, so the strict CSP allows it). */
(function () {
  "use strict";
  // Django's JavaScript catalogue (/jsi18n/, loaded before this file) translates; without it, English.
  var gettext = window.gettext || function (text) { return text; };

  // Numbers and dates in the page's language (<html lang>), for charts and other scripts:
  // portalFormat.number(18511) is "18,511" in English and "18 511" in Swedish;
  // portalFormat.date("2026-12-01") is "Dec 1, 2026" in English and "2026-12-01" in Swedish.
  var lang = (document.documentElement.lang || "en").toLowerCase();
  var locale = lang.indexOf("sv") === 0 ? "sv-SE" : (lang.indexOf("en") === 0 ? "en-US" : lang);
  var dateOptions = lang.indexOf("sv") === 0
    ? { year: "numeric", month: "2-digit", day: "2-digit", timeZone: "UTC" }
    : { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" };
  window.portalFormat = {
    locale: locale,
    number: function (value) { return new Intl.NumberFormat(locale).format(value); },
    date: function (value) {
      var d = value instanceof Date ? value : new Date(String(value).length === 10 ? value + "T00:00:00Z" : value);
      return new Intl.DateTimeFormat(locale, dateOptions).format(d);
    }
  };

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    // Request form: 'Attention required' has no due date, so clear and disable the field while it is chosen.
    var form = document.getElementById("remediation-request-form");
    if (form) {
      var due = form.querySelector("input[name=due_on]");
      var options = form.querySelectorAll("input[name=remediation_option]");
      var remembered = due ? due.value : "";
      var sync = function () {
        var chosen = form.querySelector("input[name=remediation_option]:checked");
        var attention = Boolean(chosen && chosen.value === "attention_required");
        if (!due) { return; }
        if (attention) { if (due.value) { remembered = due.value; } due.value = ""; }
        else if (!due.value) { due.value = remembered; }
        due.disabled = attention;
        due.title = attention ? gettext("Attention-required activities have no due date.") : "";
      };
      options.forEach(function (el) { el.addEventListener("change", sync); });
      sync();
    }
    // Activity page: filter the device table as soon as a status is picked.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  });
})();
