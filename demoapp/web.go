package demoapp

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// webFS holds the audience page: a single HTML page, its script and its
// style sheet, with no build step and no external resource.
//
//go:embed web
var webFS embed.FS

// webContentTypes names the types of the files the page is made of, so that
// they do not depend on the host's mime.types.
var webContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
}

// webCSP allows the page to load nothing but its own files and to talk to
// nothing but its own origin (the API it is served with).
const webCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// webFile is one embedded file, read once.
type webFile struct {
	name        string
	contentType string
	etag        string
	body        []byte
}

var (
	webFilesOnce sync.Once
	webFiles     map[string]*webFile // by URL path: "/", "/app.js", ...
)

// loadWebFiles reads every file under web/ into webFiles, keyed by its URL
// path; index.html is also served at "/".
func loadWebFiles() {
	webFiles = map[string]*webFile{}
	root, err := fs.Sub(webFS, "web")
	if err != nil {
		panic("demoapp: embedded web: " + err.Error()) // cannot happen: the directory is embedded
	}
	fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		ext := path.Ext(name)
		ct := webContentTypes[ext]
		if ct == "" {
			ct = mime.TypeByExtension(ext)
		}
		if ct == "" {
			ct = http.DetectContentType(body)
		}
		sum := sha256.Sum256(body)
		f := &webFile{name: name, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, body: body}
		webFiles["/"+name] = f
		if name == "index.html" {
			webFiles["/"] = f
		}
		return nil
	})
}

// WebHandler serves the audience page: index.html at "/", and its script and
// style sheet beside it ("/app.js", "/style.css"). Every other path is 404,
// so the handler can be mounted at "/" of a mux that serves the API under
// "/api/" (the page calls the API on its own origin).
//
// Responses carry an explicit Content-Type, an ETag and
// "Cache-Control: no-cache" (phones revalidate, so a new binary's page is
// picked up on reload), and a Content-Security-Policy that forbids any
// resource from another origin. Only GET and HEAD are allowed.
//
//	mux := http.NewServeMux()
//	mux.Handle("/api/", api)
//	mux.Handle("/", demoapp.WebHandler())
func WebHandler() http.Handler {
	webFilesOnce.Do(loadWebFiles)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "demoapp: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f := webFiles[r.URL.Path]
		if f == nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(f.contentType, "text/html") {
			h.Set("Content-Security-Policy", webCSP)
		}
		// ServeContent answers If-None-Match with 304 and handles HEAD and Range.
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	})
}
