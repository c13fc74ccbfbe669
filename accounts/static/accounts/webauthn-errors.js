// allauth's WebAuthn script reports a refused or failed key only to the console: say it on the page.
document.addEventListener("allauth.error", (event) => {
  const box = document.getElementById("webauthn-error");
  if (!box) return;
  event.preventDefault();
  const error = event.detail && event.detail.exception;
  box.textContent =
    error && error.name === "NotAllowedError"
      ? "The security key did not answer, or the request was cancelled. Try again."
      : "The security key could not be used here" + (error && error.message ? ": " + error.message : ".");
  box.hidden = false;
});
