// Copy buttons and snippet tabs of the credential page; no framework, no network.
document.addEventListener("click", async (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const text = document.getElementById(copy.dataset.copy).textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
    } catch (error) {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById(copy.dataset.copy));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
    }
    const label = copy.textContent;
    copy.textContent = "Copied";
    copy.classList.add("tk-copied");
    setTimeout(() => { copy.textContent = label; copy.classList.remove("tk-copied"); }, 1500);
    return;
  }
  const tab = event.target.closest("[data-tab]");
  if (tab) {
    for (const other of tab.parentElement.querySelectorAll("[data-tab]")) {
      other.setAttribute("aria-selected", String(other === tab));
      document.getElementById(other.dataset.tab).hidden = other !== tab;
    }
  }
});
