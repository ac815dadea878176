package httpapi

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// The live admin page at /_soma/admin/: static HTML, CSS and JavaScript,
// embedded in the binary so that operators need no build step. The page
// signs in through /login and polls the admin API; it holds no secret of
// its own, so serving it needs no token.

const adminPagePath = "/_soma/admin"

//go:embed adminui
var adminUI embed.FS

// adminPageCSP allows the page its own script, style and API calls only.
const adminPageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) adminPageRoutes(r chi.Router) {
	sub, err := fs.Sub(adminUI, "adminui")
	if err != nil {
		panic(err) // the embedded folder is part of the build
	}
	files := http.StripPrefix(adminPagePath+"/", http.FileServerFS(sub))
	r.Get(adminPagePath, http.RedirectHandler(adminPagePath+"/", http.StatusMovedPermanently).ServeHTTP)
	r.Get(adminPagePath+"/*", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", adminPageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
