// Starts Swagger UI on /api/docs/; a file rather than an inline script, so that a Content-Security-Policy
// without 'unsafe-inline' allows the page.
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // An ingest request must be signed over its exact body, which this page cannot do: only GETs are tried.
    supportedSubmitMethods: ["get"],
  });
})();
