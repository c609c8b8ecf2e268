package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string { return p.Detail }

func problem(status int, detail string, errs ...FieldError) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Errors: errs}
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	noStore(w)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads one JSON document of at most limit bytes into v, refusing
// unknown fields and trailing data.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) *Problem {
	dec, p := jsonBody(w, r, limit)
	if p != nil {
		return p
	}
	err := dec.Decode(v)
	if err == nil {
		err = end(dec)
	}
	return decodeProblem(err, limit)
}

// jsonBody checks that r has a JSON body and returns a decoder of at most
// limit bytes of it that refuses unknown fields.
func jsonBody(w http.ResponseWriter, r *http.Request, limit int64) (*json.Decoder, *Problem) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, problem(http.StatusUnsupportedMediaType, "the request body must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	return dec, nil
}

// end checks that dec has nothing after the document it decoded.
func end(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON document")
	}
	return nil
}

// decodeProblem is the answer to a body that could not be decoded with
// err (nil if none), read with limit.
func decodeProblem(err error, limit int64) *Problem {
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var slow net.Error
	switch {
	case errors.As(err, &tooBig):
		return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over the limit of %d bytes", limit))
	case errors.As(err, &slow) && slow.Timeout():
		// The server's read timeout passed; the connection is closed after
		// this answer.
		return problem(http.StatusRequestTimeout, "the request body did not arrive within the server's read timeout")
	case errors.Is(err, io.EOF):
		return problem(http.StatusBadRequest, "the request body is empty; a JSON document is required")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return problem(http.StatusBadRequest, "the request body is not valid JSON: "+err.Error())
	case errors.As(err, &typ):
		return problem(http.StatusBadRequest, fmt.Sprintf("field %q must be a JSON %s", typ.Field, typ.Type.Kind()))
	default:
		return problem(http.StatusBadRequest, "the request body is not valid: "+strings.TrimPrefix(err.Error(), "json: "))
	}
}
