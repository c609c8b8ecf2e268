// Package api is Chime's HTTP API, served by every coordinator replica.
//
// Requests authenticate with "Authorization: Bearer <api key>"; each key
// belongs to one app and every resource is looked up inside that app, so
// another app's key gets 404, never someone else's data. Bad input gets a
// 4xx application/problem+json answer that says what is wrong and changes
// nothing: a request is validated whole before the first write, and each
// write is one transaction. The membership index in Redis is updated after
// the transaction commits, and reminder changes are announced on a Redis
// channel so that the scheduling leader re-plans at once. The contract is
// api/openapi.yaml.
package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/health"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/store"
)

// OpenAPI is the API's contract, served at /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Config configures the API.
type Config struct {
	// ChangesChannel is the Redis channel reminder changes are announced on.
	ChangesChannel string
	// MaxBody bounds a request body. Defaults to 4 MiB.
	MaxBody int64
	// MaxBulk bounds the subscribers of one bulk request. Defaults to 10,000.
	MaxBulk int
	// Now tells the time for computed answers (upcoming fires). Defaults to
	// time.Now.
	Now func() time.Time
	// Content are the tag processors reminder templates are checked with
	// (a "placeholders" tag makes {{name}} placeholders valid). Defaults to
	// none.
	Content *content.Registry

	// Inbox, Announcements and Status serve the inbox, announcement and
	// message status routes. Each defaults to its package's defaults.
	Inbox         *inbox.Store
	Announcements *inbox.Announcements
	Status        *status.Recorder
	// SigningKeys are the apps' keys for gateway client tokens: the
	// signing key routes and POST /v1/users/{user_id}/token use them.
	// Defaults to keys without a keyring, with which those routes answer
	// 503.
	SigningKeys SigningKeys
	// TokenTTL is how long an issued token is valid. Defaults to
	// DefaultTokenTTL.
	TokenTTL time.Duration
}

// API serves the HTTP API.
type API struct {
	cfg   Config
	db    *gorm.DB
	rdb   redis.UniversalClient
	index *grouping.Index
	log   *slog.Logger
	keys  sync.Map // key hash -> cachedKey
}

type cachedKey struct {
	app     int64
	expires time.Time
}

// New returns the API.
func New(cfg Config, db *gorm.DB, rdb redis.UniversalClient, index *grouping.Index, log *slog.Logger) *API {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 4 << 20
	}
	if cfg.MaxBulk == 0 {
		cfg.MaxBulk = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Inbox == nil {
		cfg.Inbox = inbox.New(inbox.Config{}, rdb)
	}
	if cfg.Announcements == nil {
		cfg.Announcements = inbox.NewAnnouncements(inbox.AnnouncementConfig{}, rdb)
	}
	cfg.TokenTTL = cmp.Or(cfg.TokenTTL, DefaultTokenTTL)
	if cfg.SigningKeys == nil {
		cfg.SigningKeys = signing.New(signing.Config{}, db, rdb, nil, log)
	}
	if cfg.Status == nil {
		cfg.Status = status.New(status.Config{}, rdb, db)
	}
	return &API{cfg: cfg, db: db, rdb: rdb, index: index, log: log}
}

// Handler returns the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health.Live) // the first liveness path, kept as an alias of /livez
	mux.HandleFunc("GET /livez", health.Live)
	mux.HandleFunc("GET /readyz", health.Ready(health.Stores(a.db, a.rdb), health.DefaultTimeout))
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	})
	mux.Handle("GET /v1/reminders", a.auth(a.listReminders))
	mux.Handle("PUT /v1/reminders/{key}", a.auth(a.putReminder))
	mux.Handle("GET /v1/reminders/{key}", a.auth(a.getReminder))
	mux.Handle("DELETE /v1/reminders/{key}", a.auth(a.deleteReminder))
	mux.Handle("GET /v1/reminders/{key}/upcoming", a.auth(a.upcoming))
	mux.Handle("PUT /v1/reminders/{key}/subscribers/{user_id}", a.auth(a.putSubscriber))
	mux.Handle("DELETE /v1/reminders/{key}/subscribers/{user_id}", a.auth(a.deleteSubscriber))
	mux.Handle("POST /v1/reminders/{key}/subscribers", a.auth(a.postSubscribers))
	mux.Handle("GET /v1/occurrences", a.auth(a.listOccurrences))
	mux.Handle("GET /v1/occurrences/{id}", a.auth(a.getOccurrence))
	mux.Handle("POST /v1/events", a.auth(a.postEvent))
	mux.Handle("GET /v1/events/{id}", a.auth(a.getEvent))
	mux.Handle("DELETE /v1/events/{id}", a.auth(a.deleteEvent))
	mux.Handle("POST /v1/timetable", a.auth(a.importTimetable))
	mux.Handle("GET /v1/reminders/{key}/timetable", a.auth(a.listTimetable))
	mux.Handle("PUT /v1/reminders/{key}/timetable/{location}/{date}", a.auth(a.putTimetableRow))
	mux.Handle("DELETE /v1/reminders/{key}/timetable/{location}/{date}", a.auth(a.deleteTimetableRow))
	mux.Handle("GET /v1/occurrences/{id}/channels", a.auth(a.occurrenceChannels))
	mux.Handle("GET /v1/occurrences/{id}/failures", a.auth(a.occurrenceFailures))
	mux.Handle("GET /v1/users/{user_id}/devices", a.auth(a.listDevices))
	mux.Handle("PUT /v1/users/{user_id}/devices/{device_id}", a.auth(a.putDevice))
	mux.Handle("DELETE /v1/users/{user_id}/devices/{device_id}", a.auth(a.deleteDevice))
	// Inbox, contacts, announcements and message status (online.go).
	mux.Handle("GET /v1/users/{user_id}/inbox", a.auth(a.getInbox))
	mux.Handle("DELETE /v1/users/{user_id}/inbox", a.auth(a.clearInbox))
	mux.Handle("POST /v1/users/{user_id}/inbox/ack", a.auth(a.ackInbox))
	mux.Handle("POST /v1/users/{user_id}/inbox/read", a.auth(a.readInbox))
	mux.Handle("GET /v1/users/{user_id}/messages", a.auth(a.userMessages))
	mux.Handle("GET /v1/users/{user_id}/contacts", a.auth(a.listContacts))
	mux.Handle("PUT /v1/users/{user_id}/contacts/{contact_id}", a.auth(a.putContact))
	mux.Handle("DELETE /v1/users/{user_id}/contacts/{contact_id}", a.auth(a.deleteContact))
	mux.Handle("POST /v1/regions/{region}/announcements", a.auth(a.postAnnouncement))
	mux.Handle("GET /v1/regions/{region}/announcements", a.auth(a.listAnnouncements))
	mux.Handle("GET /v1/occurrences/{id}/status", a.auth(a.occurrenceStatus))
	mux.Handle("POST /v1/users/{user_id}/token", a.auth(a.issueToken))
	mux.Handle("GET /v1/signing-keys", a.auth(a.listSigningKeys))
	mux.Handle("POST /v1/signing-keys", a.auth(a.rotateSigningKey))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problem(http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path))
	})
	return mux
}

type handler func(w http.ResponseWriter, r *http.Request, app int64) error

// auth resolves the bearer key to its app and turns returned errors into
// problem documents.
func (a *API) auth(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chime"`)
			writeProblem(w, problem(http.StatusUnauthorized, "an Authorization: Bearer <api key> header is required"))
			return
		}
		app, err := a.appOf(r.Context(), token)
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chime", error="invalid_token"`)
			writeProblem(w, problem(http.StatusUnauthorized, "the API key is not valid"))
			return
		}
		if err == nil {
			err = h(w, r, app)
		}
		if err == nil {
			return
		}
		var p *Problem
		if errors.As(err, &p) {
			writeProblem(w, p)
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			writeProblem(w, problem(http.StatusNotFound, err.Error()))
			return
		}
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, problem(http.StatusInternalServerError, "the request failed on the server; it can be retried"))
	})
}

func (a *API) appOf(ctx context.Context, token string) (int64, error) {
	sum := sha256.Sum256([]byte(token))
	h := hex.EncodeToString(sum[:])
	if c, ok := a.keys.Load(h); ok && time.Now().Before(c.(cachedKey).expires) {
		return c.(cachedKey).app, nil
	}
	var k store.APIKey
	err := a.db.WithContext(ctx).Where("hash = ?", h).First(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, store.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	a.keys.Store(h, cachedKey{app: k.AppID, expires: time.Now().Add(30 * time.Second)})
	return k.AppID, nil
}

// CreateApp creates an app with one API key and returns the key. The key is
// shown once; only its hash is stored.
func CreateApp(ctx context.Context, db *gorm.DB, name string) (store.App, string, error) {
	app := store.App{Name: name}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return app, "", err
	}
	key := "chk_" + hex.EncodeToString(b[:])
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&app).Error; err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(key))
		return tx.Create(&store.APIKey{AppID: app.ID, Hash: hex.EncodeToString(sum[:]), Prefix: key[:12]}).Error
	})
	return app, key, err
}

// announce tells the scheduling leader that reminder times changed.
func (a *API) announce(ctx context.Context, key string) {
	if a.cfg.ChangesChannel == "" {
		return
	}
	if err := a.rdb.Publish(context.WithoutCancel(ctx), a.cfg.ChangesChannel, key).Err(); err != nil {
		// The leader re-plans on its own interval anyway.
		a.log.Warn("announce change", "reminder", key, "err", err)
	}
}
