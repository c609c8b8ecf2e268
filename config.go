package chime

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/leader"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender/apns"
	"github.com/chime-dev/chime/sender/fcm"
	"github.com/chime-dev/chime/sender/push"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/worker"
)

// Config is read from the environment; every field names its variable,
// and defaultConfig its default, a DefaultX of the package the setting
// configures. The README's configuration table lists the same (a test
// holds it to LoadConfig).
type Config struct {
	// RedisURL locates Redis (redis://[:password@]host:port/db).
	RedisURL string `env:"REDIS_URL"`
	// MySQLDSN locates MySQL/MariaDB as a go-sql-driver DSN, or "sqlite:<path>".
	MySQLDSN string `env:"MYSQL_DSN"`
	// HTTPAddr is where the coordinator serves the API.
	HTTPAddr string `env:"CHIME_HTTP_ADDR"`
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
	MetricsAddr string `env:"CHIME_METRICS_ADDR"`
	// Migrate makes the coordinator apply schema migrations at start.
	Migrate bool `env:"CHIME_MIGRATE"`
	// ReplicaID names this process in leader election, acks and logs.
	// Defaults to hostname-pid.
	ReplicaID string `env:"CHIME_REPLICA_ID"`
	// Prefix starts every Redis key Chime writes (asynq's own keys aside).
	Prefix string `env:"CHIME_REDIS_PREFIX"`
	// Queue is the asynq queue of group tasks.
	Queue string `env:"CHIME_QUEUE"`
	// Queues is how many asynq queues group tasks spread over (Queue and
	// names derived from it, on different Redis Cluster slots).
	Queues int `env:"CHIME_QUEUES"`
	// LeaderTTL is how long leadership lasts without renewal.
	LeaderTTL time.Duration `env:"CHIME_LEADER_TTL"`
	// PlanInterval is how often the leader recomputes the plan.
	PlanInterval time.Duration `env:"CHIME_PLAN_INTERVAL"`
	// Horizon is how far ahead occurrences are planned.
	Horizon time.Duration `env:"CHIME_HORIZON"`
	// MaxCatchUp bounds how far back the planner looks after an outage.
	MaxCatchUp time.Duration `env:"CHIME_MAX_CATCH_UP"`
	// PrepareLead is how long before a fire the membership index is readied.
	PrepareLead time.Duration `env:"CHIME_PREPARE_LEAD"`
	// AckTimeout is how long a started group may go without a finish ack.
	AckTimeout time.Duration `env:"CHIME_ACK_TIMEOUT"`
	// QueueTimeout is how long a queued group may go without a start ack.
	QueueTimeout time.Duration `env:"CHIME_QUEUE_TIMEOUT"`
	// Concurrency is how many groups a worker delivers at once.
	Concurrency int `env:"CHIME_WORKER_CONCURRENCY"`
	// ChunkSize is how many users go in one send and one checkpoint.
	ChunkSize int `env:"CHIME_CHUNK_SIZE"`
	// GroupSize is how many users a group holds at most on average before
	// its location's group count doubles (package grouping); also the most
	// users small groups sharing one task add up to. 0 (unset) sizes groups
	// from Redis's set-max-intset-entries (grouping.RedisSize).
	GroupSize int `env:"CHIME_GROUP_SIZE"`
	// LeaseTTL is how long a worker holds a group without a checkpoint.
	LeaseTTL time.Duration `env:"CHIME_LEASE_TTL"`
	// Sender is the worker's delivery channel: "log", "webhook" or "push".
	Sender string `env:"CHIME_SENDER"`
	// WebhookURL receives batches when Sender is "webhook".
	WebhookURL string `env:"CHIME_WEBHOOK_URL"`
	// WebhookTimeout bounds one webhook attempt.
	WebhookTimeout time.Duration `env:"CHIME_WEBHOOK_TIMEOUT"`
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
	// finish: a worker's chunks in flight, the API's open requests, a
	// gateway's connections.
	ShutdownTimeout time.Duration `env:"CHIME_SHUTDOWN_TIMEOUT"`
	// StartTimeout is how long a starting process waits for Redis and
	// MySQL to answer (not listening yet, Redis loading its dataset),
	// retrying with backoff, before it gives up. Defaults to
	// DefaultStartTimeout (60s), also when 0.
	StartTimeout time.Duration `env:"CHIME_START_TIMEOUT"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"CHIME_LOG_LEVEL"`
	// LogFormat is text or json.
	LogFormat string `env:"CHIME_LOG_FORMAT"`

	// MergeWindow is how long identical content to one user is merged into
	// one message; 0 turns merging off.
	MergeWindow time.Duration `env:"CHIME_MERGE_WINDOW"`
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

	// Delivery events (package deliveryevent).
	//
	// DeliveryEventsMaxAge is how long an event is retried before it is
	// given up, and how long an app's stream outlives its last event.
	// Defaults to deliveryevent.DefaultMaxAge (24h).
	DeliveryEventsMaxAge time.Duration `env:"CHIME_DELIVERY_EVENTS_MAX_AGE"`
	// DeliveryEventsClaimIdle is how long events a worker took stay
	// unposted before another worker's dispatcher claims them (the first
	// died). Defaults to deliveryevent.DefaultClaimIdle (1m).
	DeliveryEventsClaimIdle time.Duration `env:"CHIME_DELIVERY_EVENTS_CLAIM_IDLE"`
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

// Defaults of the settings the root package owns; the others are the
// DefaultX of the package each configures.
const (
	DefaultHTTPAddr    = ":8080"
	DefaultMetricsAddr = ":9090"
	DefaultMigrate     = true
	DefaultSender      = "log"
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "text"
)

// defaultConfig is the configuration of an empty environment, which
// MaxGroupSize bounds CHIME_GROUP_SIZE: a worker holds a group's members
// in memory, and a regroup moves a group's members in one script call per
// 5,000.
const MaxGroupSize = 100_000

// LoadConfig overwrites with the variables that are set. The settings whose
// 0 means the default of the package they configure (the API's HTTP and
// bulk limits, the gateway's limits) stay 0 here: that package applies it.
func defaultConfig() Config {
	return Config{
		HTTPAddr:       DefaultHTTPAddr,
		MetricsAddr:    DefaultMetricsAddr,
		Migrate:        DefaultMigrate,
		Prefix:         keyspace.DefaultPrefix,
		Queue:          queue.DefaultName,
		Queues:         queue.DefaultQueues,
		LeaderTTL:      leader.DefaultTTL,
		PlanInterval:   scheduler.DefaultPlanInterval,
		Horizon:        scheduler.DefaultHorizon,
		MaxCatchUp:     scheduler.DefaultMaxCatchUp,
		PrepareLead:    scheduler.DefaultPrepareLead,
		AckTimeout:     scheduler.DefaultAckTimeout,
		QueueTimeout:   scheduler.DefaultQueueTimeout,
		Concurrency:    worker.DefaultConcurrency,
		ChunkSize:      worker.DefaultChunkSize,
		LeaseTTL:       worker.DefaultLeaseTTL,
		Sender:         DefaultSender,
		WebhookTimeout: webhook.DefaultTimeout,
		Push: PushConfig{
			APNSHost:  apns.DefaultHost,
			APNSConns: apns.DefaultConns,
			FCMRate:   fcm.DefaultRate,
			RetryFor:  push.DefaultRetryFor,
		},
		ShutdownTimeout: worker.DefaultShutdownTimeout,
		LogLevel:        DefaultLogLevel,
		LogFormat:       DefaultLogFormat,
		MergeWindow:     content.DefaultMergeWindow,
		Online: OnlineConfig{
			GatewayAddr:     gateway.DefaultAddr,
			Heartbeat:       gateway.DefaultHeartbeatInterval,
			PingTimeout:     gateway.DefaultPingTimeout,
			PresenceTTL:     presence.DefaultTTL,
			InboxCap:        inbox.DefaultCap,
			InboxTTL:        inbox.DefaultTTL,
			UnreadTTL:       inbox.DefaultUnreadTTL,
			StatusRetention: status.DefaultRetention,
			StatusPerUser:   status.DefaultPerUser,
		},
	}
}

// LoadConfig reads the configuration from environ ("KEY=value" entries).
func LoadConfig(environ []string) (Config, error) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && v != "" {
			m[k] = v
		}
	}
	// Variables set empty are unset: their defaults apply.
	c := defaultConfig()
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
	if c.DeliveryEventsMaxAge < 0 || c.DeliveryEventsClaimIdle < 0 {
		return c, fmt.Errorf("configuration: CHIME_DELIVERY_EVENTS_MAX_AGE and CHIME_DELIVERY_EVENTS_CLAIM_IDLE must be positive durations (or unset for the defaults)")
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
	if c.Queues < 1 || c.Queues > queue.MaxQueues {
		return c, fmt.Errorf("configuration: CHIME_QUEUES must be between 1 and %d, not %d", queue.MaxQueues, c.Queues)
	}
	if c.GroupSize < 0 || c.GroupSize > MaxGroupSize {
		return c, fmt.Errorf("configuration: CHIME_GROUP_SIZE must be between 1 and %d (or unset to follow Redis's set-max-intset-entries), not %d", MaxGroupSize, c.GroupSize)
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

// PushConfig configures CHIME_SENDER=push: APNs when APNSKeyFile is set,
// FCM when FCMProject is set, and web devices always. Devices of a platform
// whose channel is not configured are recorded as failed.
type PushConfig struct {
	// APNSKeyFile is the .p8 signing key of token-based APNs auth.
	APNSKeyFile string `env:"CHIME_APNS_KEY_FILE"`
	// APNSKeyID is the key's 10-character ID.
	APNSKeyID string `env:"CHIME_APNS_KEY_ID"`
	// APNSTeamID is the Apple developer team's ID.
	APNSTeamID string `env:"CHIME_APNS_TEAM_ID"`
	// APNSTopic is the app's bundle ID (apns-topic).
	APNSTopic string `env:"CHIME_APNS_TOPIC"`
	// APNSHost is the APNs server; https://api.sandbox.push.apple.com for
	// development builds.
	APNSHost string `env:"CHIME_APNS_HOST"`
	// APNSCAFile, if set, is a PEM file of the only roots trusted for
	// APNSHost (a local server); otherwise the system roots.
	APNSCAFile string `env:"CHIME_APNS_CA_FILE"`
	// APNSConns is how many HTTP/2 connections a worker keeps to APNs.
	APNSConns int `env:"CHIME_APNS_CONNS"`
	// APNSRate is APNs messages per minute over all workers; 0 for no limit.
	APNSRate int `env:"CHIME_APNS_RATE"`
	// FCMProject is the Firebase project ID.
	FCMProject string `env:"CHIME_FCM_PROJECT"`
	// FCMCredentialsFile is the service account's JSON key.
	FCMCredentialsFile string `env:"CHIME_FCM_CREDENTIALS_FILE"`
	// FCMEndpoint replaces the FCM v1 base URL (https://fcm.googleapis.com/v1).
	FCMEndpoint string `env:"CHIME_FCM_ENDPOINT"`
	// FCMRate is FCM messages per minute over all workers (FCM's default
	// quota per project); 0 for no limit.
	FCMRate int `env:"CHIME_FCM_RATE"`
	// WebhookRate is web device webhooks per minute over all workers; 0 for
	// no limit.
	WebhookRate int `env:"CHIME_WEBHOOK_RATE"`
	// WebDeviceAllowCIDRs are address ranges web device endpoints may use
	// although they are not global (loopback, private, link-local...), as
	// CIDRs separated by commas ("127.0.0.0/8,::1/128" for local tests).
	// Empty: none, endpoints must be on the internet (package netguard).
	WebDeviceAllowCIDRs string `env:"CHIME_WEB_DEVICE_ALLOW_CIDRS"`
	// RetryFor bounds how long one chunk retries refused messages before the
	// worker retries the group later.
	RetryFor time.Duration `env:"CHIME_PUSH_RETRY_FOR"`
}

// guard is the address policy of web device endpoints, at registration
// (the API) and at send time (workers). A bad list (check refuses it)
// allows nothing more.
func (c PushConfig) guard() *netguard.Policy {
	allow, _ := netguard.ParseCIDRs(c.WebDeviceAllowCIDRs)
	return netguard.New(allow)
}

func (c PushConfig) check() error {
	if c.APNSKeyFile != "" && (c.APNSKeyID == "" || c.APNSTeamID == "" || c.APNSTopic == "") {
		return errors.New("CHIME_APNS_KEY_ID, CHIME_APNS_TEAM_ID and CHIME_APNS_TOPIC are required with CHIME_APNS_KEY_FILE")
	}
	if c.FCMProject != "" && c.FCMCredentialsFile == "" {
		return errors.New("CHIME_FCM_CREDENTIALS_FILE is required with CHIME_FCM_PROJECT")
	}
	if c.APNSConns < 1 {
		return errors.New("CHIME_APNS_CONNS must be at least 1")
	}
	if c.APNSRate < 0 || c.FCMRate < 0 || c.WebhookRate < 0 {
		return errors.New("CHIME_APNS_RATE, CHIME_FCM_RATE and CHIME_WEBHOOK_RATE must not be negative")
	}
	if c.RetryFor <= 0 {
		return errors.New("CHIME_PUSH_RETRY_FOR must be a positive duration")
	}
	if _, err := netguard.ParseCIDRs(c.WebDeviceAllowCIDRs); err != nil {
		return fmt.Errorf("CHIME_WEB_DEVICE_ALLOW_CIDRS: %w", err)
	}
	return nil
}

// OnlineConfig configures the gateway, presence, the inbox and delivery
// status. The README's configuration table lists the same.
type OnlineConfig struct {
	// Enabled makes workers deliver over the gateways to online users, and
	// through the CHIME_SENDER channel (plus the inbox) to offline ones.
	Enabled bool `env:"CHIME_ONLINE"`
	// GatewayAddr is where cmd/gateway listens.
	GatewayAddr string `env:"CHIME_GATEWAY_ADDR"`
	// SigningKeyOverlap is how long after a rotation an app's replaced
	// signing keys stay valid, unless the rotation asks for less. 0 means
	// signing.DefaultOverlap (24h).
	SigningKeyOverlap time.Duration `env:"CHIME_SIGNING_KEY_OVERLAP"`
	// TokenMaxLifetime is the longest a client token may live (exp after
	// iat, and after it is presented); the API's tokens live no longer. 0
	// means token.DefaultMaxLifetime (24h).
	TokenMaxLifetime time.Duration `env:"CHIME_TOKEN_MAX_LIFETIME"`
	// MaxConnsPerUser is the most connections one user of an app may hold
	// on one gateway instance. 0 means gateway.DefaultMaxConnsPerUser (10).
	MaxConnsPerUser int `env:"CHIME_GATEWAY_MAX_CONNS_PER_USER"`
	// HandshakeRate is how many handshakes per second a gateway takes from
	// one remote address, HandshakeBurst how many at once. 0 means
	// gateway.DefaultHandshakeRate (10) and gateway.DefaultHandshakeBurst
	// (50).
	HandshakeRate  float64 `env:"CHIME_GATEWAY_HANDSHAKE_RATE"`
	HandshakeBurst int     `env:"CHIME_GATEWAY_HANDSHAKE_BURST"`
	// AckFlush is how long a gateway gathers clients' acks and read
	// receipts before applying them together, AckBatch the most it applies
	// at once. 0 means gateway.DefaultAckFlush (5ms) and
	// gateway.DefaultAckBatch (1000).
	AckFlush time.Duration `env:"CHIME_GATEWAY_ACK_FLUSH"`
	AckBatch int           `env:"CHIME_GATEWAY_ACK_BATCH"`
	// Heartbeat is how often the gateway pings clients and refreshes their
	// presence.
	Heartbeat time.Duration `env:"CHIME_HEARTBEAT_INTERVAL"`
	// PingTimeout is how long a client has to answer a ping.
	PingTimeout time.Duration `env:"CHIME_PING_TIMEOUT"`
	// PresenceTTL is how long a connection counts as online after its last
	// refresh: the bound on how long a dead gateway's users look online.
	PresenceTTL time.Duration `env:"CHIME_PRESENCE_TTL"`
	// InboxCap is the most messages kept per user, pending and unread each.
	InboxCap int `env:"CHIME_INBOX_CAP"`
	// InboxTTL is how long a pending (not yet pushed) message is kept.
	InboxTTL time.Duration `env:"CHIME_INBOX_TTL"`
	// UnreadTTL is how long an acknowledged message is kept unread.
	UnreadTTL time.Duration `env:"CHIME_UNREAD_TTL"`
	// StatusRetention is how long per-user delivery status of the push
	// channel and of expired messages is kept (that of the gateway and
	// inbox channels is kept with the inbox's messages).
	StatusRetention time.Duration `env:"CHIME_STATUS_RETENTION"`
	// StatusPerUser is the most per-user status entries kept.
	StatusPerUser int `env:"CHIME_STATUS_PER_USER"`
}

func (c OnlineConfig) validate() error {
	for name, d := range map[string]time.Duration{
		"CHIME_HEARTBEAT_INTERVAL": c.Heartbeat, "CHIME_PING_TIMEOUT": c.PingTimeout, "CHIME_PRESENCE_TTL": c.PresenceTTL,
		"CHIME_INBOX_TTL": c.InboxTTL, "CHIME_UNREAD_TTL": c.UnreadTTL, "CHIME_STATUS_RETENTION": c.StatusRetention,
	} {
		if d <= 0 {
			return fmt.Errorf("%s must be a positive duration, not %s", name, d)
		}
	}
	if c.PresenceTTL <= c.Heartbeat+c.PingTimeout {
		return fmt.Errorf("CHIME_PRESENCE_TTL (%s) must be longer than CHIME_HEARTBEAT_INTERVAL + CHIME_PING_TIMEOUT (%s)", c.PresenceTTL, c.Heartbeat+c.PingTimeout)
	}
	for name, d := range map[string]time.Duration{"CHIME_SIGNING_KEY_OVERLAP": c.SigningKeyOverlap, "CHIME_TOKEN_MAX_LIFETIME": c.TokenMaxLifetime} {
		if d < 0 {
			return fmt.Errorf("%s must be a positive duration (or 0 for the default), not %s", name, d)
		}
	}
	if c.MaxConnsPerUser < 0 || c.HandshakeRate < 0 || c.HandshakeBurst < 0 {
		return errors.New("CHIME_GATEWAY_MAX_CONNS_PER_USER, CHIME_GATEWAY_HANDSHAKE_RATE and CHIME_GATEWAY_HANDSHAKE_BURST must be positive (or 0 for the default)")
	}
	if c.AckFlush < 0 || c.AckFlush > 10*time.Second {
		return fmt.Errorf("CHIME_GATEWAY_ACK_FLUSH must be from 0 (the default) to 10s, not %s", c.AckFlush)
	}
	if c.AckBatch < 0 || c.AckBatch > 10000 {
		return fmt.Errorf("CHIME_GATEWAY_ACK_BATCH must be from 0 (the default) to 10000, not %d", c.AckBatch)
	}
	if c.InboxCap < 1 || c.InboxCap > 5000 {
		return fmt.Errorf("CHIME_INBOX_CAP must be from 1 to 5000, not %d", c.InboxCap)
	}
	if c.StatusPerUser < 1 || c.StatusPerUser > 5000 {
		return fmt.Errorf("CHIME_STATUS_PER_USER must be from 1 to 5000, not %d", c.StatusPerUser)
	}
	return nil
}
