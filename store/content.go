package store

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"

	"github.com/chime-dev/chime/message"
)

// Texts are a reminder's translations by BCP 47 tag, stored as a JSON
// object (NULL when there are none).
type Texts map[string]message.Text

// Value implements driver.Valuer.
func (t Texts) Value() (driver.Value, error) { return jsonValue(t, len(t)) }

// Scan implements sql.Scanner.
func (t *Texts) Scan(src any) error { return jsonScan(src, t) }

// Tags are a reminder's tags, stored as a JSON array (NULL when there are
// none).
type Tags []string

// Value implements driver.Valuer.
func (t Tags) Value() (driver.Value, error) { return jsonValue(t, len(t)) }

// Scan implements sql.Scanner.
func (t *Tags) Scan(src any) error { return jsonScan(src, t) }

func jsonValue(v any, n int) (driver.Value, error) {
	if n == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func jsonScan(src, dst any) error {
	var b []byte
	switch s := src.(type) {
	case nil:
		return nil
	case []byte:
		b = s
	case string:
		b = []byte(s)
	default:
		return fmt.Errorf("scan %T into %T", src, dst)
	}
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, dst)
}
