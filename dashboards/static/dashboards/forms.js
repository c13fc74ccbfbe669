// Filter forms apply as soon as a choice changes (the Show button remains for keyboards and
// screen readers without this script). A select with data-resets clears the named field first.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
  form.querySelectorAll(".js-hidden").forEach((element) => { element.hidden = true; });
  form.querySelectorAll("select").forEach((select) => select.addEventListener("change", () => {
    if (select.dataset.resets) form.elements[select.dataset.resets].value = "";
    form.submit();
  }));
});
