// Progressive enhancement for the member account form: show a field only where it applies.
// Without this script every field shows, labelled with when it applies, and the server checks the rules.
(function () {
  "use strict";

  function chosen(form, name) {
    var input = form.querySelector('input[name="' + name + '"]:checked:not(:disabled)');
    return input ? input.value : "";
  }

  function update(form) {
    // Document order: an outer block is settled before the blocks inside it.
    form.querySelectorAll("[data-show-when]").forEach(function (block) {
      var rule = block.getAttribute("data-show-when").split("=");
      var show = chosen(form, rule[0]) === rule[1];
      block.hidden = !show;
      // A hidden field is not sent, so it cannot fail a rule the CSM cannot see.
      block.querySelectorAll("input, select, textarea").forEach(function (input) {
        input.disabled = !show;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.account-form").forEach(function (form) {
      update(form);
      form.addEventListener("change", function () {
        update(form);
      });
    });
  });
})();
