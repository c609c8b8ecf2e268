package chime

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/seal"
)

// Config is read from the environment; every field names its variable and
// default. The README's configuration table lists the same.
type Config struct {
	// RedisURL locates Redis (redis://[:password@]host:port/db).
	RedisURL string `env:"REDIS_URL"`
	// MySQLDSN locates MySQL/MariaDB as a go-sql-driver DSN, or "sqlite:<path>".
	MySQLDSN string `env:"MYSQL_DSN"`
	// HTTPAddr is where the coordinator serves the API.
	HTTPAddr string `env:"CHIME_HTTP_ADDR" envDefault:":8080"`
	// HTTPReadTimeout bounds reading a whole API request, body included.
	// Defaults to api.DefaultReadTimeout (30s).
	HTTPReadTimeout time.Duration `env:"CHIME_HTTP_READ_TIMEOUT"`
	// HTTPWriteTimeout bounds an API request from the end of its header to
	// the end of its answer. Defaults to api.DefaultWriteTimeout (2m).
	HTTPWriteTimeout time.Duration `env:"CHIME_HTTP_WRITE_TIMEOUT"`
	// HTTPIdleTimeout bounds an idle kept-alive API connection. Defaults to
	// api.DefaultIdleTimeout (120s).
	HTTPIdleTimeout time.Duration `env:"CHIME_HTTP_IDLE_TIMEOUT"`
	// HTTPMaxHeaderBytes bounds an API request's header. Defaults to
	// api.DefaultMaxHeaderBytes (64 KiB).
	HTTPMaxHeaderBytes int `env:"CHIME_HTTP_MAX_HEADER_BYTES"`
	// OperatorKey authenticates the API's operator routes, which manage
	// apps and their keys; they answer 503 without it. At least
	// MinOperatorKey characters.
	OperatorKey string `env:"CHIME_OPERATOR_KEY"`
	// MetricsAddr is where a worker serves /livez, /readyz and /metrics
	// (the coordinator serves them on HTTPAddr).
	MetricsAddr string `env:"CHIME_METRICS_ADDR" envDefault:":9090"`
	// Migrate makes the coordinator apply schema migrations at start.
	Migrate bool `env:"CHIME_MIGRATE" envDefault:"true"`
	// ReplicaID names this process in leader election, acks and logs.
	// Defaults to hostname-pid.
	ReplicaID string `env:"CHIME_REPLICA_ID"`
	// Prefix starts every Redis key Chime writes (asynq's own keys aside).
	Prefix string `env:"CHIME_REDIS_PREFIX" envDefault:"chime:"`
	// Queue is the asynq queue of group tasks.
	Queue string `env:"CHIME_QUEUE" envDefault:"chime-groups"`
	// LeaderTTL is how long leadership lasts without renewal.
	LeaderTTL time.Duration `env:"CHIME_LEADER_TTL" envDefault:"10s"`
	// PlanInterval is how often the leader recomputes the plan.
	PlanInterval time.Duration `env:"CHIME_PLAN_INTERVAL" envDefault:"1m"`
	// Horizon is how far ahead occurrences are planned.
	Horizon time.Duration `env:"CHIME_HORIZON" envDefault:"26h"`
	// MaxCatchUp bounds how far back the planner looks after an outage.
	MaxCatchUp time.Duration `env:"CHIME_MAX_CATCH_UP" envDefault:"168h"`
	// PrepareLead is how long before a fire the membership index is readied.
	PrepareLead time.Duration `env:"CHIME_PREPARE_LEAD" envDefault:"30s"`
	// AckTimeout is how long a started group may go without a finish ack.
	AckTimeout time.Duration `env:"CHIME_ACK_TIMEOUT" envDefault:"2m"`
	// QueueTimeout is how long a queued group may go without a start ack.
	QueueTimeout time.Duration `env:"CHIME_QUEUE_TIMEOUT" envDefault:"1m"`
	// Concurrency is how many groups a worker delivers at once.
	Concurrency int `env:"CHIME_WORKER_CONCURRENCY" envDefault:"32"`
	// ChunkSize is how many users go in one send and one checkpoint.
	ChunkSize int `env:"CHIME_CHUNK_SIZE" envDefault:"100"`
	// LeaseTTL is how long a worker holds a group without a checkpoint.
	LeaseTTL time.Duration `env:"CHIME_LEASE_TTL" envDefault:"30s"`
	// Sender is the worker's delivery channel: "log", "webhook" or "push".
	Sender string `env:"CHIME_SENDER" envDefault:"log"`
	// WebhookURL receives batches when Sender is "webhook".
	WebhookURL string `env:"CHIME_WEBHOOK_URL"`
	// WebhookTimeout bounds one webhook attempt.
	WebhookTimeout time.Duration `env:"CHIME_WEBHOOK_TIMEOUT" envDefault:"10s"`
	// WebhookSecret ("whsec_...") signs the batches POSTed to WebhookURL.
	// Empty: unsigned.
	WebhookSecret string `env:"CHIME_WEBHOOK_SECRET"`
	// SecretKeys are the keys that seal the secrets Chime stores and reads
	// back (web devices' signing secrets, apps' gateway signing keys), as
	// "id=base64key,...": the first seals, all open (see package seal).
	// Empty: such secrets cannot be stored.
	SecretKeys string        `env:"CHIME_SECRET_KEYS"`
	keyring    *seal.Keyring // parsed from SecretKeys
	// Push holds the settings of Sender "push".
	Push PushConfig
	// ShutdownTimeout is how long a stopping process lets work in hand
	// finish: a worker's chunks in flight, the API's open requests.
	ShutdownTimeout time.Duration `env:"CHIME_SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// StartTimeout is how long a starting process waits for Redis and
	// MySQL to answer (not listening yet, Redis loading its dataset),
	// retrying with backoff, before it gives up. Defaults to
	// DefaultStartTimeout (60s), also when 0.
	StartTimeout time.Duration `env:"CHIME_START_TIMEOUT"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"CHIME_LOG_LEVEL" envDefault:"info"`
	// LogFormat is text or json.
	LogFormat string `env:"CHIME_LOG_FORMAT" envDefault:"text"`

	// MergeWindow is how long identical content to one user is merged into
	// one message; 0 turns merging off.
	MergeWindow time.Duration `env:"CHIME_MERGE_WINDOW" envDefault:"10m"`
	// MaskWords are the words the "mask" tag masks, separated by commas.
	MaskWords string `env:"CHIME_MASK_WORDS"`
	// MaskWordsFile names a file of more such words, one per line.
	MaskWordsFile string `env:"CHIME_MASK_WORDS_FILE"`
	// Placeholders are the values the "placeholders" tag fills in for
	// {{name}}, as a JSON object: {"brand":"Chime Mart"}.
	Placeholders string `env:"CHIME_PLACEHOLDERS"`

	processors *content.Registry // built from the three above

	// BulkPerApp is how many bulk requests (POST subscribers, POST
	// timetable) of one app a coordinator runs at once; more get 429.
	// Defaults to api.DefaultBulkPerApp (2).
	BulkPerApp int `env:"CHIME_BULK_CONCURRENCY"`
	// BulkTotal is how many bulk requests a coordinator runs at once over
	// all apps; more get 503. Defaults to api.DefaultBulkTotal (8).
	BulkTotal int `env:"CHIME_BULK_CONCURRENCY_TOTAL"`
	// MaxTimetable bounds a timetable upload, in bytes; larger get 413.
	// Defaults to api.DefaultMaxTimetable (16 MiB).
	MaxTimetable int64 `env:"CHIME_TIMETABLE_MAX_BYTES"`

	Online OnlineConfig
}

// MinOperatorKey is the shortest CHIME_OPERATOR_KEY accepted.
const MinOperatorKey = 32

// KeysChannel is the Redis channel API key revocations are announced on.
func (c Config) KeysChannel() string { return c.Prefix + "keys" }

// Processors returns the tag processors the configuration sets up (none
// for a Config not made by LoadConfig).
func (c Config) Processors() *content.Registry { return c.processors }

// Keyring returns the keys CHIME_SECRET_KEYS configures; nil when unset.
// A Config not made by LoadConfig (a test's, a tool's) has its SecretKeys
// parsed here, and none if they do not parse.
func (c Config) Keyring() *seal.Keyring {
	if c.keyring == nil && c.SecretKeys != "" {
		k, _ := seal.Parse(c.SecretKeys)
		return k
	}
	return c.keyring
}

// LoadConfig reads the configuration from environ ("KEY=value" entries).
func LoadConfig(environ []string) (Config, error) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: m}); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	if c.ReplicaID == "" {
		host, _ := os.Hostname()
		c.ReplicaID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	for name, d := range map[string]time.Duration{
		"CHIME_LEADER_TTL": c.LeaderTTL, "CHIME_PLAN_INTERVAL": c.PlanInterval, "CHIME_HORIZON": c.Horizon, "CHIME_MAX_CATCH_UP": c.MaxCatchUp,
		"CHIME_PREPARE_LEAD": c.PrepareLead, "CHIME_ACK_TIMEOUT": c.AckTimeout, "CHIME_QUEUE_TIMEOUT": c.QueueTimeout,
		"CHIME_LEASE_TTL": c.LeaseTTL, "CHIME_WEBHOOK_TIMEOUT": c.WebhookTimeout, "CHIME_SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return c, fmt.Errorf("configuration: %s must be a positive duration, not %s", name, d)
		}
	}
	for name, d := range map[string]time.Duration{
		"CHIME_HTTP_READ_TIMEOUT": c.HTTPReadTimeout, "CHIME_HTTP_WRITE_TIMEOUT": c.HTTPWriteTimeout, "CHIME_HTTP_IDLE_TIMEOUT": c.HTTPIdleTimeout,
	} {
		if d < 0 {
			return c, fmt.Errorf("configuration: %s must be a positive duration (or unset for the default), not %s", name, d)
		}
	}
	if c.HTTPMaxHeaderBytes < 0 {
		return c, fmt.Errorf("configuration: CHIME_HTTP_MAX_HEADER_BYTES must be positive (or unset for the default), not %d", c.HTTPMaxHeaderBytes)
	}
	if c.OperatorKey != "" && len(c.OperatorKey) < MinOperatorKey {
		return c, fmt.Errorf("configuration: CHIME_OPERATOR_KEY must be at least %d characters (openssl rand -hex 32 makes one)", MinOperatorKey)
	}
	if c.StartTimeout < 0 {
		return c, fmt.Errorf("configuration: CHIME_START_TIMEOUT must be a positive duration (or unset for %s), not %s", DefaultStartTimeout, c.StartTimeout)
	}
	if c.Concurrency < 1 || c.ChunkSize < 1 {
		return c, fmt.Errorf("configuration: CHIME_WORKER_CONCURRENCY and CHIME_CHUNK_SIZE must be at least 1")
	}
	if c.AckTimeout <= c.LeaseTTL {
		return c, fmt.Errorf("configuration: CHIME_ACK_TIMEOUT (%s) must be longer than CHIME_LEASE_TTL (%s): a group is requeued only after its holder can have lost it", c.AckTimeout, c.LeaseTTL)
	}
	switch c.Sender {
	case "log", "webhook", "push":
	default:
		return c, fmt.Errorf("configuration: CHIME_SENDER must be log, webhook or push, not %q", c.Sender)
	}
	if err := c.Push.check(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	if c.MergeWindow < 0 {
		return c, fmt.Errorf("configuration: CHIME_MERGE_WINDOW must be 0 (off) or a positive duration, not %s", c.MergeWindow)
	}
	var err error
	if c.keyring, err = seal.Parse(c.SecretKeys); err != nil {
		return c, fmt.Errorf("configuration: CHIME_SECRET_KEYS: %w", err)
	}
	ph, err := content.ParsePlaceholders(c.Placeholders)
	if err != nil {
		return c, fmt.Errorf("configuration: CHIME_PLACEHOLDERS: %w", err)
	}
	c.processors, err = content.NewRegistry(content.ProcessorsConfig{
		MaskWords: content.ParseWordList(c.MaskWords), MaskFile: c.MaskWordsFile, Placeholders: ph,
	})
	if err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	if c.Sender == "webhook" && c.WebhookURL == "" {
		return c, fmt.Errorf("configuration: CHIME_WEBHOOK_URL is required when CHIME_SENDER=webhook")
	}
	if c.BulkPerApp < 0 || c.BulkTotal < 0 || c.MaxTimetable < 0 {
		return c, fmt.Errorf("configuration: CHIME_BULK_CONCURRENCY, CHIME_BULK_CONCURRENCY_TOTAL and CHIME_TIMETABLE_MAX_BYTES must be positive (or unset for their defaults)")
	}
	if err := c.Online.validate(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// withBulk gives the API the limits of bulk requests and uploads.
func (c Config) withBulk(ac api.Config) api.Config {
	ac.BulkPerApp, ac.BulkTotal, ac.MaxTimetable = c.BulkPerApp, c.BulkTotal, c.MaxTimetable
	return ac
}

// Logger builds the process logger the configuration asks for.
func (c Config) Logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("configuration: CHIME_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("configuration: CHIME_LOG_FORMAT must be text or json, not %q", c.LogFormat)
}
