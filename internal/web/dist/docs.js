window.ui=window.SwaggerUIBundle({url:new URL("openapi.json",location.href).href,dom_id:"#docs",deepLinking:!0,validatorUrl:null,presets:[window.SwaggerUIBundle.presets.apis],layout:"BaseLayout"});
