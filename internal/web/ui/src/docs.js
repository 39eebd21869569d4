// The API reference: Swagger UI, served by runbox itself, over the
// server's own /openapi.json. Nothing is fetched from elsewhere: the
// validator badge, which would call validator.swagger.io, is off.
window.ui = window.SwaggerUIBundle({
  url: new URL("openapi.json", location.href).href,
  dom_id: "#docs",
  deepLinking: true,
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
