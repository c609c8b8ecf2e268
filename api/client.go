package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client is a small client of the API, for tools and demos written in Go.
type Client struct {
	// Base is the API's address, e.g. "http://127.0.0.1:8080".
	Base string
	// Key is the app's API key.
	Key string
	// HTTP sends the requests. Defaults to http.DefaultClient.
	HTTP *http.Client
	// Header is added to every request (an Idempotency-Key, say).
	Header http.Header
}

// StatusError is an answer outside 2xx. For the API its body is a problem
// document, decoded into Problem.
type StatusError struct {
	Method, Path string
	Status       int
	Problem      *Problem // nil if the body was not a problem document
	Body         []byte
}

func (e *StatusError) Error() string {
	msg := strings.TrimSpace(string(e.Body))
	if e.Problem != nil && e.Problem.Detail != "" {
		msg = e.Problem.Detail
		var fields []string
		for _, f := range e.Problem.Errors {
			fields = append(fields, f.Field+": "+f.Message)
		}
		if len(fields) > 0 {
			msg += " (" + strings.Join(fields, "; ") + ")"
		}
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), msg)
}

// Do sends in (if not nil) as JSON and decodes a 2xx answer into out (if
// not nil). Any other answer is returned as a *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	return c.Send(ctx, method, path, ct, body, out)
}

// Send sends body with the given content type (none if empty) and decodes a
// 2xx answer into out (if not nil). Any other answer is returned as a
// *StatusError.
func (c *Client) Send(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		se := &StatusError{Method: method, Path: path, Status: resp.StatusCode, Body: b}
		var p Problem
		if json.Unmarshal(b, &p) == nil && p.Status != 0 {
			se.Problem = &p
		}
		return se
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
