package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/chime-dev/chime/inbox"
)

// Frame is a frame the gateway sends: a message, the welcome after the
// replay on connect, a pong, or an error.
type Frame struct {
	Type     string         `json:"type"`
	Message  *inbox.Message `json:"message,omitempty"`
	Conn     string         `json:"conn,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Replayed int            `json:"replayed,omitempty"`
	Error    string         `json:"error,omitempty"`
	// Received is when the client read the frame (not sent on the wire).
	Received time.Time `json:"-"`
}

// Client is a Go client of the gateway protocol, for tests, load tests and
// Go apps. Frames arrive on Frames until the connection closes, when Frames
// is closed and Err says why.
type Client struct {
	ws     *websocket.Conn
	Frames chan Frame
	err    error
}

// Dial connects to the gateway's /ws URL (ws://host:port/ws) with token.
// hc may be nil.
func Dial(ctx context.Context, url, token string, hc *http.Client) (*Client, error) {
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: hc,
		HTTPHeader: http.Header{"Authorization": []string{"Bearer " + token}},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial gateway: %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial gateway: %w", err)
	}
	c := &Client{ws: ws, Frames: make(chan Frame, 64)}
	go c.read()
	return c, nil
}

func (c *Client) read() {
	defer close(c.Frames)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var f Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.err = fmt.Errorf("bad frame %q: %w", data, err)
			return
		}
		f.Received = time.Now()
		c.Frames <- f
	}
}

// Err is why the connection closed; valid after Frames is closed.
func (c *Client) Err() error { return c.err }

// Ack tells the gateway the messages arrived.
func (c *Client) Ack(ctx context.Context, ids ...string) error { return c.send(ctx, "ack", ids) }

// Read sends read receipts.
func (c *Client) Read(ctx context.Context, ids ...string) error { return c.send(ctx, "read", ids) }

func (c *Client) send(ctx context.Context, typ string, ids []string) error {
	b, _ := json.Marshal(map[string]any{"type": typ, "ids": ids})
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// Close closes the connection normally.
func (c *Client) Close() error { return c.ws.Close(websocket.StatusNormalClosure, "") }

// CloseNow drops the connection without a close handshake.
func (c *Client) CloseNow() error { return c.ws.CloseNow() }
