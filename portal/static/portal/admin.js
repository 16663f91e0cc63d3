/* Small enhancements of the portal's admin pages (a static file, so the strict CSP allows it). */
(function () {
  "use strict";
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
