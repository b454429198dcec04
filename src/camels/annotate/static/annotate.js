// Keyboard shortcuts and time-on-page for the annotation form (loaded from /static: the CSP forbids
// inline script). The form works without this file; it only adds keys and the `seconds` field.
(function () {
  "use strict";
  var form = document.getElementById("annotation-form");
  if (!form) { return; }
  var started = Date.now();
  var keys = {
    q: "acceptable_first-yes", a: "acceptable_first-no",
    w: "acceptable_second-yes", s: "acceptable_second-no",
    "1": "preference-1", "2": "preference-2", "3": "preference-3", "4": "preference-4", "5": "preference-5"
  };
  form.addEventListener("submit", function () {
    document.getElementById("seconds").value = ((Date.now() - started) / 1000).toFixed(1);
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"));
    if (typing) {
      if (event.key === "Escape") { target.blur(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var key = event.key.toLowerCase();
    // Enter on a link or button keeps its own meaning (follow, press).
    if (key === "enter" && target && (target.tagName === "A" || target.tagName === "BUTTON")) { return; }
    if (keys[key]) {
      var input = document.getElementById(keys[key]);
      input.checked = true;
      input.focus();
      event.preventDefault();
    } else if (key === "f") {
      var flag = document.getElementById("flagged");
      flag.checked = !flag.checked;
      event.preventDefault();
    } else if (key === "c") {
      document.getElementById("comment").focus();
      event.preventDefault();
    } else if (key === "enter") {
      event.preventDefault();
      if (form.reportValidity()) { form.requestSubmit(); }
    }
  });
})();
