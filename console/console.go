// Package console is the browser console product managers define and watch
// reminders in, served by every coordinator at /console.
//
// Pages are rendered on the server (html/template, which escapes every
// value); the few scripts (the editor's timeline, the live view of a fire)
// are static files embedded in the binary, so the Content-Security-Policy
// allows scripts from the console itself only and no inline script. A
// live view follows its fire over server-sent events, a bounded number
// per session (Config.LiveStreams), and polls beyond them. Every
// change goes through the API's own routes, called in-process as the
// signed-in user (api.API.As): the same validation, the same store code,
// the same announcements to the scheduler, and the same audit log.
//
// Users belong to one app and have a role: a viewer looks, an editor also
// changes. Sessions live in MySQL, keyed by the SHA-256 of a random cookie
// (HttpOnly, SameSite=Strict, Secure over TLS), and expire after
// Config.SessionTTL. Every form carries the session's CSRF token, checked on
// every POST. Sign-in attempts are limited per email and per client address
// in Redis.
package console

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Path is where the coordinator mounts the console.
const Path = "/console"

// Defaults of Config.
const (
	DefaultSessionTTL    = 12 * time.Hour
	DefaultLoginPerEmail = 5
	DefaultLoginPerIP    = 20
	DefaultLoginWindow   = 15 * time.Minute
)

// Config configures the console.
type Config struct {
	// SessionTTL is how long a session lasts from sign-in. Defaults to
	// DefaultSessionTTL (12h).
	SessionTTL time.Duration
	// LoginPerEmail is how many sign-in attempts one email gets per
	// LoginWindow, right or wrong; more are answered 429. Defaults to
	// DefaultLoginPerEmail (5).
	LoginPerEmail int
	// LoginPerIP is how many sign-in attempts one client address gets per
	// LoginWindow. Defaults to DefaultLoginPerIP (20).
	LoginPerIP int
	// LoginWindow is the window of the sign-in limits. Defaults to
	// DefaultLoginWindow (15m).
	LoginWindow time.Duration
	// LiveStreams is how many live views one session may stream at once
	// from one server (server-sent events); more poll instead. Defaults
	// to DefaultLiveStreams (4).
	LiveStreams int
	// Prefix starts the console's Redis keys.
	Prefix string
	// Now tells the time. Defaults to time.Now.
	Now func() time.Time
}

// Console serves the console's pages.
type Console struct {
	cfg     Config
	db      *gorm.DB
	api     *api.API
	limiter *redis_rate.Limiter
	pages   *template.Template
	log     *slog.Logger
	streams streams
	// ending is closed when the server shuts down: the live streams end
	// (http.Server.Shutdown waits for every handler to return).
	ending  chan struct{}
	endOnce sync.Once
}

// EndStreams ends the live views' event streams; their pages poll
// instead. The coordinator calls it when its server shuts down.
func (c *Console) EndStreams() { c.endOnce.Do(func() { close(c.ending) }) }

// New returns the console of the API a.
func New(cfg Config, db *gorm.DB, rdb redis.UniversalClient, a *api.API, log *slog.Logger) *Console {
	cfg.SessionTTL = cmp.Or(cfg.SessionTTL, DefaultSessionTTL)
	cfg.LoginPerEmail = cmp.Or(cfg.LoginPerEmail, DefaultLoginPerEmail)
	cfg.LoginPerIP = cmp.Or(cfg.LoginPerIP, DefaultLoginPerIP)
	cfg.LoginWindow = cmp.Or(cfg.LoginWindow, DefaultLoginWindow)
	cfg.LiveStreams = cmp.Or(cfg.LiveStreams, DefaultLiveStreams)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))
	return &Console{cfg: cfg, db: db, api: a, limiter: redis_rate.NewLimiter(rdb), pages: pages, log: log, ending: make(chan struct{})}
}

// csp allows the console's own scripts, styles and fetches, and nothing
// inline.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Handler returns the console's routes, under Path.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix(Path+"/static/", http.FileServerFS(static))
	mux.Handle("GET "+Path+"/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET "+Path+"/login", c.loginPage)
	mux.HandleFunc("POST "+Path+"/login", c.login)
	mux.Handle("POST "+Path+"/logout", c.user(c.logout))
	mux.Handle("GET "+Path+"/{$}", http.RedirectHandler(Path+"/reminders", http.StatusSeeOther))
	mux.Handle("GET "+Path, http.RedirectHandler(Path+"/reminders", http.StatusSeeOther))
	mux.Handle("GET "+Path+"/reminders", c.user(c.reminders))
	mux.Handle("GET "+Path+"/reminders/new", c.user(c.newReminder))
	mux.Handle("POST "+Path+"/reminders/save", c.editor(c.saveReminder))
	mux.Handle("POST "+Path+"/timeline", c.user(c.timeline))
	mux.Handle("GET "+Path+"/reminders/{key}", c.user(c.reminder))
	mux.Handle("GET "+Path+"/reminders/{key}/edit", c.user(c.editReminder))
	mux.Handle("GET "+Path+"/reminders/{key}/pause", c.user(c.confirmPause))
	mux.Handle("POST "+Path+"/reminders/{key}/pause", c.editor(c.setPaused))
	mux.Handle("POST "+Path+"/reminders/{key}/events", c.editor(c.postEvent))
	mux.Handle("POST "+Path+"/reminders/{key}/test-sends", c.editor(c.postTestSend))
	mux.Handle("GET "+Path+"/occurrences/{id}", c.user(c.occurrence))
	mux.Handle("GET "+Path+"/occurrences/{id}/live", c.user(c.occurrenceLive))
	mux.Handle("GET "+Path+"/occurrences/{id}/stream", c.user(c.occurrenceStream))
	mux.Handle("GET "+Path+"/import", c.user(c.importPage))
	mux.Handle("POST "+Path+"/import", c.user(c.importCSV))
	mux.Handle("GET "+Path+"/locations", c.user(c.locations))
	mux.Handle("GET "+Path+"/locations/{location}", c.user(c.location))
	mux.Handle("POST "+Path+"/locations/{location}", c.editor(c.saveLocation))
	mux.Handle("GET "+Path+"/audit", c.user(c.audit))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// session is a signed-in request's user and app.
type session struct {
	store.ConsoleSession
	User store.ConsoleUser
	App  store.App
}

func (s *session) Editor() bool { return s.User.Role == store.RoleEditor }

type pageHandler func(w http.ResponseWriter, r *http.Request, s *session) error

const sessionCookie = "chime_console"

// user serves h to a signed-in user, checking the CSRF token of every
// POST; others are sent to the sign-in page.
func (c *Console) user(h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		if errors.Is(err, store.ErrNotFound) {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/live") && !strings.HasSuffix(r.URL.Path, "/stream") {
				http.Redirect(w, r, Path+"/login", http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, http.StatusUnauthorized, "You are signed out. Sign in again.")
			return
		}
		if err != nil {
			c.fail(w, r, nil, http.StatusInternalServerError, "The console cannot read sessions just now; try again.")
			c.log.Error("read console session", "err", err)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseMultipartForm(maxForm); err != nil && !errors.Is(err, http.ErrNotMultipart) {
				c.fail(w, r, s, http.StatusBadRequest, "The form could not be read: "+err.Error())
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) != 1 {
				c.fail(w, r, s, http.StatusForbidden, "The form has expired or did not come from this console. Reload the page and try again.")
				return
			}
		}
		if err := h(w, r, s); err != nil {
			var p *api.Problem
			if errors.As(err, &p) {
				c.fail(w, r, s, p.Status, p.Detail)
				return
			}
			c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			c.fail(w, r, s, http.StatusInternalServerError, "The request failed on the server; it can be retried.")
		}
	})
}

// editor is user for editors only.
func (c *Console) editor(h pageHandler) http.Handler {
	return c.user(func(w http.ResponseWriter, r *http.Request, s *session) error {
		if !s.Editor() {
			c.fail(w, r, s, http.StatusForbidden, "Your role is viewer: you can look but not change. Ask an editor.")
			return nil
		}
		return h(w, r, s)
	})
}

// maxForm bounds a form, an uploaded timetable included.
const maxForm = api.DefaultMaxTimetable + 1<<20

func (c *Console) session(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, store.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	sess, u, err := store.ConsoleSessionUser(ctx, c.db, hashToken(ck.Value), c.cfg.Now())
	if err != nil {
		return nil, err
	}
	app, err := store.FindApp(ctx, c.db, u.AppID)
	if err != nil {
		return nil, err
	}
	return &session{ConsoleSession: sess, User: u, App: app}, nil
}

func hashToken(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// page is what every page template gets.
type page struct {
	Title   string
	Nav     string
	S       *session
	Message string
	Data    any
}

func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := c.pages.ExecuteTemplate(&buf, name, p); err != nil {
		c.log.Error("render console page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	if r.Header.Get("X-Fragment") != "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_ = c.pages.ExecuteTemplate(w, "error-fragment", msg)
		return
	}
	c.render(w, status, "error", page{Title: http.StatusText(status), S: s, Message: msg})
}

// call serves one API request in-process as the session's user and decodes
// a 2xx answer into out; any other answer is returned as its problem.
func (c *Console) call(r *http.Request, s *session, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	c.api.As(s.App.ID, api.Actor{Kind: store.ActorConsole, ID: s.User.Email}).ServeHTTP(rec, req)
	if rec.status >= 300 {
		p := &api.Problem{Status: rec.status}
		if err := json.Unmarshal(rec.body.Bytes(), p); err != nil || p.Detail == "" {
			p.Detail = fmt.Sprintf("the API answered %d", rec.status)
		}
		return p
	}
	if out != nil && rec.body.Len() > 0 {
		return json.Unmarshal(rec.body.Bytes(), out)
	}
	return nil
}

// callJSON is call with v as the JSON body.
func (c *Console) callJSON(r *http.Request, s *session, method, path string, v, out any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.call(r, s, method, path, "application/json", bytes.NewReader(raw), out)
}

// recorder keeps an in-process answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.status = code }
