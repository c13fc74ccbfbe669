// Filter forms apply as soon as a choice changes (without this script, a Show button does it).
// A select with data-resets clears the named field first; empty fields are left out of the URL.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
  form.querySelectorAll(".js-hidden").forEach((element) => { element.hidden = true; });
  form.querySelectorAll("select").forEach((select) => select.addEventListener("change", () => {
    if (select.dataset.resets) form.elements[select.dataset.resets].value = "";
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) query.append(name, value);
    window.location.search = query.toString();
  }));
});
