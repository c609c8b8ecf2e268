package chime_test

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/token"
)

// zeroMeans are the settings LoadConfig leaves 0 when unset because the
// package they configure applies its default to 0; the README states that
// default.
var zeroMeans = map[string]any{
	"CHIME_HTTP_READ_TIMEOUT":          api.DefaultReadTimeout,
	"CHIME_HTTP_WRITE_TIMEOUT":         api.DefaultWriteTimeout,
	"CHIME_HTTP_IDLE_TIMEOUT":          api.DefaultIdleTimeout,
	"CHIME_HTTP_MAX_HEADER_BYTES":      api.DefaultMaxHeaderBytes,
	"CHIME_BULK_CONCURRENCY":           api.DefaultBulkPerApp,
	"CHIME_BULK_CONCURRENCY_TOTAL":     api.DefaultBulkTotal,
	"CHIME_TIMETABLE_MAX_BYTES":        api.DefaultMaxTimetable,
	"CHIME_SIGNING_KEY_OVERLAP":        signing.DefaultOverlap,
	"CHIME_TOKEN_MAX_LIFETIME":         token.DefaultMaxLifetime,
	"CHIME_GATEWAY_MAX_CONNS_PER_USER": gateway.DefaultMaxConnsPerUser,
	"CHIME_GATEWAY_HANDSHAKE_RATE":     gateway.DefaultHandshakeRate,
	"CHIME_GATEWAY_HANDSHAKE_BURST":    gateway.DefaultHandshakeBurst,
	"CHIME_GATEWAY_ACK_FLUSH":          gateway.DefaultAckFlush,
	"CHIME_GATEWAY_ACK_BATCH":          gateway.DefaultAckBatch,
	"CHIME_START_TIMEOUT":              chime.DefaultStartTimeout,
	"CHIME_DELIVERY_EVENTS_MAX_AGE":    deliveryevent.DefaultMaxAge,
	"CHIME_DELIVERY_EVENTS_CLAIM_IDLE": deliveryevent.DefaultClaimIdle,
}

// fromServer are the settings LoadConfig leaves 0 when unset because the
// process takes the default from a server it connects to; the README's
// default cell names the server.
var fromServer = map[string]string{
	"CHIME_GROUP_SIZE": "from Redis", // grouping.RedisSize
}

// readmeRow is the settings table's "| `CHIME_X`, `CHIME_Y` | default |
// meaning |" row.
var readmeRow = regexp.MustCompile("^\\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \\|([^|]*)\\|")

// The README's settings table is the loader's: the variables the Config
// structs read (their env tags, nested ones included) are the table's rows,
// and each row's default is what LoadConfig yields from an empty
// environment, read the way the README writes it (durations as 26h or
// 120s, counts as numbers, "(required)" and an empty cell as unset).
func TestREADMESettingsAreTheLoaders(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	documented := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		m := readmeRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		def := strings.TrimSpace(m[2])
		if i := strings.Index(def, "`"); i >= 0 {
			def = strings.SplitN(def[i+1:], "`", 2)[0] // "`16777216` (16 MiB)"
		}
		for _, name := range strings.Split(m[1], ", ") {
			name = strings.Trim(name, "`")
			require.NotContains(t, documented, name, "listed twice")
			documented[name] = def
		}
	}

	cfg, err := chime.LoadConfig(nil)
	require.NoError(t, err)
	loaded := map[string]reflect.Value{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if name, ok := f.Tag.Lookup("env"); ok {
				loaded[name] = v.Field(i)
			} else if f.IsExported() && f.Type.Kind() == reflect.Struct {
				walk(v.Field(i))
			}
		}
	}
	walk(reflect.ValueOf(cfg))

	require.Equal(t, slices.Sorted(maps.Keys(loaded)), slices.Sorted(maps.Keys(documented)), "the variables the loader reads are the README's")
	for name, v := range loaded {
		readme := documented[name]
		if name == "CHIME_REPLICA_ID" {
			require.Equal(t, "hostname-pid", readme)
			host, _ := os.Hostname()
			require.Equal(t, fmt.Sprintf("%s-%d", host, os.Getpid()), v.String())
			continue
		}
		if d, ok := fromServer[name]; ok {
			require.True(t, v.IsZero(), name)
			require.Equal(t, d, readme, name)
			continue
		}
		if v.IsZero() {
			if d, ok := zeroMeans[name]; ok {
				v = reflect.ValueOf(d).Convert(v.Type())
			}
		}
		if readme == "(required)" {
			readme = ""
		}
		require.Equal(t, readme, asREADME(t, v, readme), name)
	}
}

// asREADME writes v as the README does, taking the unit the README chose
// for a duration (120s stays 120s, not 2m).
func asREADME(t *testing.T, v reflect.Value, readme string) string {
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d := time.Duration(v.Int())
		for _, u := range []struct {
			unit string
			d    time.Duration
		}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
			if strings.HasSuffix(readme, u.unit) && d%u.d == 0 {
				return strconv.FormatInt(int64(d/u.d), 10) + u.unit
			}
		}
		return d.String()
	case v.Kind() == reflect.String:
		return v.String()
	case v.Kind() == reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case v.CanInt():
		return strconv.FormatInt(v.Int(), 10)
	case v.CanFloat():
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	}
	t.Fatalf("no README form for %s", v.Type())
	return ""
}

// CHIME_SHUTDOWN_TIMEOUT bounds a gateway's graceful stop as it bounds the
// other processes': a gateway assembled from the configuration has the
// configured timeout, and the README's default when it is unset (it had
// the gateway package's own 10s, whatever the variable said).
func TestShutdownTimeoutReachesTheGateway(t *testing.T) {
	env := testenv.New(t)
	keys, err := seal.NewKey("test")
	require.NoError(t, err)
	for _, tc := range []struct {
		env  []string
		want time.Duration
	}{
		{nil, 20 * time.Second},
		{[]string{"CHIME_SHUTDOWN_TIMEOUT=3s"}, 3 * time.Second},
	} {
		cfg, err := chime.LoadConfig(append(tc.env, "CHIME_SECRET_KEYS="+keys, "CHIME_REDIS_PREFIX="+env.Prefix))
		require.NoError(t, err)
		g, err := chime.NewGateway(cfg, env.DB, env.Redis, clock.Real{}, testenv.Logger(t), nil)
		require.NoError(t, err)
		require.Equal(t, tc.want, g.Config().ShutdownTimeout, tc.env)
	}
}
