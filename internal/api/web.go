package api

import "net/http"

// Handle serves h for pattern (a ServeMux pattern such as "GET /{$}")
// beside the API, with its request ids and logs: the web playground and
// the offline API reference are registered so. It must be called before
// Serve, and pattern must not conflict with the API's routes.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.root.Handle(pattern, h)
}
