// Package api is Chime's HTTP API, served by every coordinator replica.
//
// Requests authenticate with "Authorization: Bearer <api key>"; each key
// belongs to one app and every resource is looked up inside that app, so
// another app's key gets 404, never someone else's data. The operator routes
// (/v1/operator/...) take the operator key instead, and manage apps and
// their keys (operator.go). Bad input gets a
// 4xx application/problem+json answer that says what is wrong and changes
// nothing: a request is validated whole before the first write, and each
// write is one transaction (a timetable import, one per 1,000 rows: see
// importTimetable). The membership index in Redis is updated after
// the transaction commits, and reminder changes are announced on a Redis
// channel so that the scheduling leader re-plans at once. The contract is
// api/openapi.yaml.
package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/apikey"
	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/health"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/userzone"
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

	// BulkPerApp is how many bulk requests (POST subscribers, POST
	// timetable) of one app this replica runs at once; more are answered
	// 429 with Retry-After. Defaults to DefaultBulkPerApp (2).
	BulkPerApp int
	// BulkTotal is how many bulk requests this replica runs at once over
	// all apps; more are answered 503 with Retry-After. Defaults to
	// DefaultBulkTotal (8).
	BulkTotal int
	// MaxTimetable bounds a timetable upload, in bytes. Defaults to
	// DefaultMaxTimetable (16 MiB).
	MaxTimetable int64
	// Ready are the checks of /readyz. Defaults to pinging rdb and db's
	// own pool, which busy requests can exhaust: a process gives checks on
	// a probe pool of its own (store.OpenProbe).
	Ready map[string]health.Check
	// WebDeviceGuard decides which IP addresses a web device's endpoint URL
	// may name (a host name is checked when it is sent to). Defaults to
	// global addresses only.
	WebDeviceGuard *netguard.Policy
	// Keyring seals web devices' signing secrets before they are stored;
	// without one web devices are not registered (503).
	Keyring *seal.Keyring
	// Opens counts opens (POST /v1/occurrences/{id}/opens, inbox reads) and
	// records their delivery events. Defaults to counting under
	// keyspace.DefaultPrefix, without events.
	Opens *deliveryevent.Opens

	// Keys resolves API keys to apps. Defaults to a resolver that is not
	// run, and so caches no working key.
	Keys *apikey.Resolver
	// Policy mirrors users' preferences in Redis for the workers. Defaults
	// to one with the default key prefix.
	Policy *policy.Policy

	// OperatorKey authenticates the operator routes (/v1/operator/...);
	// without it they answer 503. Only its SHA-256 is kept.
	OperatorKey string

	// The limits of the HTTP server Server returns; no route streams, so
	// every answer fits in them.
	//
	// ReadHeaderTimeout bounds reading a request's header. Defaults to 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a client
	// still sending then gets 408 and the connection is closed (the largest
	// body, a 16 MiB timetable, needs about 0.6 MB/s). Defaults to 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its header to the end
	// of its answer (reading the body, handling, writing): the longest
	// handling, a 16 MiB timetable written 1,000 rows a transaction, must
	// fit. Defaults to 2m, as long as chimectl waits.
	WriteTimeout time.Duration
	// IdleTimeout bounds a kept-alive connection between requests. Defaults
	// to 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header; a larger one gets 431.
	// Defaults to 64 KiB.
	MaxHeaderBytes int
}

// Defaults of the HTTP server's limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

// API serves the HTTP API.
type API struct {
	cfg   Config
	db    *gorm.DB
	rdb   redis.UniversalClient
	index *grouping.Index
	log   *slog.Logger
	limit *bulkLimit
	// moves marks users who move into a user zone (package userzone).
	moves *userzone.Moves
	// testSends limits POST /v1/reminders/{key}/test-sends per app.
	testSends testSendLimit
	// operator is the SHA-256 of Config.OperatorKey, nil without one.
	operator []byte
	// routes serve in-process calls (As).
	routesOnce sync.Once
	routes     http.Handler
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
	if cfg.Opens == nil {
		cfg.Opens = deliveryevent.NewOpens(deliveryevent.OpensConfig{}, rdb, db, nil, log)
	}
	cfg.BulkPerApp = cmp.Or(cfg.BulkPerApp, DefaultBulkPerApp)
	cfg.BulkTotal = cmp.Or(cfg.BulkTotal, DefaultBulkTotal)
	cfg.MaxTimetable = cmp.Or(cfg.MaxTimetable, DefaultMaxTimetable)
	if cfg.Ready == nil {
		var pool *sql.DB
		if db != nil {
			pool, _ = db.DB()
		}
		cfg.Ready = health.Stores(pool, rdb)
	}
	if cfg.Policy == nil {
		cfg.Policy = policy.New(policy.Config{}, rdb, db)
	}
	if cfg.Keys == nil {
		cfg.Keys = apikey.New(apikey.Config{Now: cfg.Now}, db, rdb, log)
	}
	cfg.ReadHeaderTimeout = cmp.Or(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	cfg.ReadTimeout = cmp.Or(cfg.ReadTimeout, DefaultReadTimeout)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, DefaultWriteTimeout)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.MaxHeaderBytes = cmp.Or(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	a := &API{cfg: cfg, db: db, rdb: rdb, index: index, log: log, limit: newBulkLimit(cfg.BulkPerApp, cfg.BulkTotal)}
	if index != nil {
		a.moves = userzone.NewMoves(rdb, index.Prefix())
	}
	if cfg.OperatorKey != "" {
		sum := sha256.Sum256([]byte(cfg.OperatorKey))
		a.operator = sum[:]
		a.cfg.OperatorKey = ""
	}
	return a
}

// Server returns an HTTP server of the API's routes with the configured
// limits.
func (a *API) Server() *http.Server {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.ReadTimeout,
		WriteTimeout:      a.cfg.WriteTimeout,
		IdleTimeout:       a.cfg.IdleTimeout,
		MaxHeaderBytes:    a.cfg.MaxHeaderBytes,
	}
	if a.log != nil {
		srv.ErrorLog = slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)
	}
	return srv
}

// Handler returns the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health.Live) // the first liveness path, kept as an alias of /livez
	mux.HandleFunc("GET /livez", health.Live)
	mux.HandleFunc("GET /readyz", health.Ready(a.cfg.Ready, health.DefaultTimeout, a.log))
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	})
	mux.Handle("GET /v1/reminders", a.auth(a.listReminders))
	mux.Handle("PUT /v1/reminders/{key}", a.auth(a.audited(a.putReminder)))
	mux.Handle("GET /v1/reminders/{key}", a.auth(a.getReminder))
	mux.Handle("DELETE /v1/reminders/{key}", a.auth(a.audited(a.deleteReminder)))
	mux.Handle("GET /v1/reminders/{key}/upcoming", a.auth(a.upcoming))
	mux.Handle("PUT /v1/reminders/{key}/subscribers/{user_id}", a.auth(a.putSubscriber))
	mux.Handle("DELETE /v1/reminders/{key}/subscribers/{user_id}", a.auth(a.deleteSubscriber))
	mux.Handle("POST /v1/reminders/{key}/subscribers", a.auth(a.bulk(a.postSubscribers)))
	mux.Handle("POST /v1/reminders/{key}/test-sends", a.auth(a.audited(a.postTestSend)))
	mux.Handle("GET /v1/occurrences", a.auth(a.listOccurrences))
	mux.Handle("GET /v1/occurrences/{id}", a.auth(a.getOccurrence))
	mux.Handle("POST /v1/events", a.auth(a.audited(a.postEvent)))
	mux.Handle("GET /v1/events", a.auth(a.listEvents))
	mux.Handle("GET /v1/events/{id}", a.auth(a.getEvent))
	mux.Handle("DELETE /v1/events/{id}", a.auth(a.audited(a.deleteEvent)))
	mux.Handle("POST /v1/timetable", a.auth(a.audited(a.bulk(a.importTimetable))))
	mux.Handle("GET /v1/reminders/{key}/timetable", a.auth(a.listTimetable))
	mux.Handle("PUT /v1/reminders/{key}/timetable/{location}/{date}", a.auth(a.audited(a.putTimetableRow)))
	mux.Handle("DELETE /v1/reminders/{key}/timetable/{location}/{date}", a.auth(a.audited(a.deleteTimetableRow)))
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
	mux.Handle("POST /v1/regions/{region}/announcements", a.auth(a.audited(a.postAnnouncement)))
	mux.Handle("GET /v1/regions/{region}/announcements", a.auth(a.listAnnouncements))
	mux.Handle("GET /v1/occurrences/{id}/status", a.auth(a.occurrenceStatus))
	mux.Handle("POST /v1/users/{user_id}/token", a.auth(a.issueToken))
	// Users' delivery preferences and the app's delivery defaults (preferences.go).
	mux.Handle("GET /v1/users/{user_id}/preferences", a.auth(a.getPreferences))
	mux.Handle("PUT /v1/users/{user_id}/preferences", a.auth(a.putPreferences))
	mux.Handle("GET /v1/settings/delivery", a.auth(a.getDeliverySettings))
	mux.Handle("PUT /v1/settings/delivery", a.auth(a.audited(a.putDeliverySettings)))
	// Apps and their keys, for operators (operator.go).
	mux.Handle("GET /v1/operator/apps", a.operatorAuth(a.listApps))
	mux.Handle("POST /v1/operator/apps", a.operatorAuth(a.createApp))
	mux.Handle("GET /v1/operator/apps/{app}/keys", a.operatorAuth(a.listKeys))
	mux.Handle("POST /v1/operator/apps/{app}/keys", a.operatorAuth(a.createKey))
	mux.Handle("DELETE /v1/operator/apps/{app}/keys/{key_id}", a.operatorAuth(a.revokeKey))
	mux.Handle("GET /v1/locations", a.auth(a.listLocations))
	mux.Handle("PUT /v1/locations/{location}", a.auth(a.audited(a.putLocation)))
	mux.Handle("GET /v1/locations/{location}", a.auth(a.getLocation))
	mux.Handle("GET /v1/locations/{location}/prayer-times", a.auth(a.prayerTimes))
	mux.Handle("GET /v1/signing-keys", a.auth(a.listSigningKeys))
	// The audit log of the changes marked audited above (audit.go).
	mux.Handle("GET /v1/audit", a.auth(a.listAudit))
	mux.Handle("POST /v1/signing-keys", a.auth(a.audited(a.rotateSigningKey)))
	// Delivery events out and opens (deliveryevents.go).
	mux.Handle("PUT /v1/delivery-events/endpoint", a.auth(a.audited(a.putDeliveryEventEndpoint)))
	mux.Handle("GET /v1/delivery-events/endpoint", a.auth(a.getDeliveryEventEndpoint))
	mux.Handle("DELETE /v1/delivery-events/endpoint", a.auth(a.audited(a.deleteDeliveryEventEndpoint)))
	mux.Handle("POST /v1/occurrences/{id}/opens", a.auth(a.postOpens))
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
		noStore(w)
		if c, ok := r.Context().Value(actorKey{}).(caller); ok && c.app != 0 {
			a.answer(w, r, h(w, r, c.app))
			return
		}
		token, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chime"`)
			writeProblem(w, problem(http.StatusUnauthorized, "an Authorization: Bearer <api key> header is required"))
			return
		}
		app, id, err := a.cfg.Keys.Key(r.Context(), token)
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chime", error="invalid_token"`)
			writeProblem(w, problem(http.StatusUnauthorized, "the API key is not valid"))
			return
		}
		if err == nil {
			err = h(w, withActor(r, Actor{Kind: store.ActorKey, ID: strconv.FormatInt(id, 10)}), app)
		}
		a.answer(w, r, err)
	})
}

// answer turns an error a handler returned into a problem document.
func (a *API) answer(w http.ResponseWriter, r *http.Request, err error) {
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
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// header. The scheme is case-insensitive (RFC 9110, section 11.1) and may
// be followed by more than one space.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimLeft(token, " ")
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// noStore marks an answer as not to be cached or content-sniffed: answers
// carry tenants' data and tokens.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

// CreateApp creates an app with one API key and returns the key. The key is
// shown once; only its hash is stored.
func CreateApp(ctx context.Context, db *gorm.DB, name string) (store.App, string, error) {
	app, _, key, err := store.CreateApp(ctx, db, name, "")
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
