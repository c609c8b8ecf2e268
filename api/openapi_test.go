package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3high "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/chime-dev/chime/api"
)

// routes is every route api.(*API).Handler registers, as in its mux patterns,
// except the "/" catch-all that answers 404 to everything else. auth says
// whether the route requires a bearer key: an app's key, or the operator key
// for the routes under operatorPrefix.
var routes = []struct {
	method, pattern string
	auth            bool
}{
	{"GET", "/healthz", false},
	{"GET", "/livez", false},
	{"GET", "/readyz", false},
	{"GET", "/metrics", false},
	{"GET", "/v1/openapi.yaml", false},
	{"GET", "/v1/reminders", true},
	{"PUT", "/v1/reminders/{key}", true},
	{"GET", "/v1/reminders/{key}", true},
	{"GET", "/v1/reminders/{key}/upcoming", true},
	{"DELETE", "/v1/reminders/{key}", true},
	{"PUT", "/v1/reminders/{key}/subscribers/{user_id}", true},
	{"DELETE", "/v1/reminders/{key}/subscribers/{user_id}", true},
	{"POST", "/v1/reminders/{key}/subscribers", true},
	{"POST", "/v1/reminders/{key}/test-sends", true},
	{"GET", "/v1/occurrences", true},
	{"GET", "/v1/occurrences/{id}", true},
	{"GET", "/v1/events", true},
	{"POST", "/v1/events", true},
	{"GET", "/v1/events/{id}", true},
	{"DELETE", "/v1/events/{id}", true},
	{"POST", "/v1/timetable", true},
	{"GET", "/v1/reminders/{key}/timetable", true},
	{"PUT", "/v1/reminders/{key}/timetable/{location}/{date}", true},
	{"DELETE", "/v1/reminders/{key}/timetable/{location}/{date}", true},
	{"GET", "/v1/occurrences/{id}/channels", true},
	{"GET", "/v1/occurrences/{id}/failures", true},
	{"GET", "/v1/users/{user_id}/devices", true},
	{"PUT", "/v1/users/{user_id}/devices/{device_id}", true},
	{"DELETE", "/v1/users/{user_id}/devices/{device_id}", true},
	{"GET", "/v1/occurrences/{id}/status", true},
	{"GET", "/v1/users/{user_id}/inbox", true},
	{"DELETE", "/v1/users/{user_id}/inbox", true},
	{"POST", "/v1/users/{user_id}/inbox/ack", true},
	{"POST", "/v1/users/{user_id}/inbox/read", true},
	{"GET", "/v1/users/{user_id}/messages", true},
	{"GET", "/v1/users/{user_id}/contacts", true},
	{"PUT", "/v1/users/{user_id}/contacts/{contact_id}", true},
	{"DELETE", "/v1/users/{user_id}/contacts/{contact_id}", true},
	{"POST", "/v1/regions/{region}/announcements", true},
	{"GET", "/v1/regions/{region}/announcements", true},
	{"POST", "/v1/users/{user_id}/token", true},
	{"GET", "/v1/users/{user_id}/preferences", true},
	{"PUT", "/v1/users/{user_id}/preferences", true},
	{"GET", "/v1/settings/delivery", true},
	{"PUT", "/v1/settings/delivery", true},
	{"GET", "/v1/locations", true},
	{"PUT", "/v1/locations/{location}", true},
	{"GET", "/v1/locations/{location}", true},
	{"GET", "/v1/locations/{location}/prayer-times", true},
	{"GET", "/v1/signing-keys", true},
	{"POST", "/v1/signing-keys", true},
	{"PUT", "/v1/delivery-events/endpoint", true},
	{"GET", "/v1/delivery-events/endpoint", true},
	{"DELETE", "/v1/delivery-events/endpoint", true},
	{"POST", "/v1/occurrences/{id}/opens", true},
	{"GET", "/v1/audit", true},
	{"GET", "/v1/operator/apps", true},
	{"POST", "/v1/operator/apps", true},
	{"GET", "/v1/operator/apps/{app}/keys", true},
	{"POST", "/v1/operator/apps/{app}/keys", true},
	{"DELETE", "/v1/operator/apps/{app}/keys/{key_id}", true},
}

// operatorPrefix starts the routes that take the operator key
// (operatorAuth) rather than an app's key (bearerAuth).
const operatorPrefix = "/v1/operator/"

// scheme is the security scheme a route requiring a key documents.
func scheme(pattern string) string {
	if strings.HasPrefix(pattern, operatorPrefix) {
		return "operatorAuth"
	}
	return "bearerAuth"
}

// catchAll is the pattern of Handler's 404 fallback; it is described in the
// document's info, not as a path.
const catchAll = "/"

type openAPIDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Security   []map[string][]string           `yaml:"security"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `yaml:"type"`
			Scheme string `yaml:"scheme"`
		} `yaml:"securitySchemes"`
		Parameters map[string]openAPIParam `yaml:"parameters"`
	} `yaml:"components"`
}

type openAPIOp struct {
	OperationID string                 `yaml:"operationId"`
	Security    *[]map[string][]string `yaml:"security"`
	Parameters  []openAPIParam         `yaml:"parameters"`
	Responses   map[string]yaml.Node   `yaml:"responses"`
}

type openAPIParam struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

// httpMethods are the keys of a path item that are operations.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadDoc(t *testing.T) (openAPIDoc, map[string]openAPIOp) {
	t.Helper()
	if len(bytes.TrimSpace(api.OpenAPI)) == 0 {
		t.Fatal("api.OpenAPI is empty")
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	ops := map[string]openAPIOp{} // "METHOD /path" -> operation
	for path, item := range doc.Paths {
		for key, node := range item {
			if !slices.Contains(httpMethods, key) {
				continue
			}
			var op openAPIOp
			if err := node.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			ops[strings.ToUpper(key)+" "+path] = op
		}
	}
	return doc, ops
}

func TestOpenAPIVersion(t *testing.T) {
	doc, _ := loadDoc(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
}

// TestOpenAPIDocumentsEveryRoute checks that every route is documented with
// its method and that the document describes no route the API lacks.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	_, ops := loadDoc(t)
	want := map[string]bool{}
	for _, r := range routes {
		key := r.method + " " + r.pattern
		want[key] = true
		if _, ok := ops[key]; !ok {
			t.Errorf("route %s is not documented in openapi.yaml", key)
		}
	}
	for key := range ops {
		if !want[key] {
			t.Errorf("openapi.yaml documents %s, which api.(*API).Handler does not register", key)
		}
	}
}

// TestOpenAPIRouteTableMatchesHandler keeps the table above true to the code:
// it reads the patterns Handler registers from api.go, and asks the mux
// Handler builds which pattern serves each route.
func TestOpenAPIRouteTableMatchesHandler(t *testing.T) {
	registered := handlerPatterns(t)
	var table []string
	for _, r := range routes {
		table = append(table, r.method+" "+r.pattern)
	}
	table = append(table, catchAll)
	slices.Sort(table)
	slices.Sort(registered)
	if !slices.Equal(table, registered) {
		t.Errorf("api.(*API).Handler registers\n\t%s\nbut the route table lists\n\t%s",
			strings.Join(registered, "\n\t"), strings.Join(table, "\n\t"))
	}

	mux, ok := api.New(api.Config{}, nil, nil, nil, nil).Handler().(*http.ServeMux)
	if !ok {
		t.Fatal("api.(*API).Handler no longer returns an *http.ServeMux")
	}
	for _, r := range routes {
		req := httptest.NewRequest(r.method, concrete(r.pattern), nil)
		if _, got := mux.Handler(req); got != r.method+" "+r.pattern {
			t.Errorf("%s %s is served by pattern %q, want %q", r.method, concrete(r.pattern), got, r.method+" "+r.pattern)
		}
	}
	// Anything else falls to the catch-all (404, never 405).
	req := httptest.NewRequest("POST", "/v1/reminders/k1", nil)
	if _, got := mux.Handler(req); got != catchAll {
		t.Errorf("POST /v1/reminders/k1 is served by %q, want the catch-all %q", got, catchAll)
	}
}

// handlerPatterns returns the pattern of every Handle and HandleFunc call in
// api.(*API).Handler, read from api.go.
func handlerPatterns(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "api.go", nil, 0)
	if err != nil {
		t.Fatalf("parse api.go: %v", err)
	}
	var out []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "Handler" || fn.Recv == nil {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("api.go: a %s pattern is not a string literal; the test cannot read it", sel.Sel.Name)
				return true
			}
			p, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
			return true
		})
	}
	if len(out) == 0 {
		t.Fatal("found no routes in api.(*API).Handler in api.go")
	}
	return out
}

var wildcard = regexp.MustCompile(`\{([^}]+)\}`)

// concrete fills a pattern's wildcards with sample values.
func concrete(pattern string) string {
	return wildcard.ReplaceAllString(pattern, "${1}1")
}

// TestOpenAPIParametersAndAuth checks each operation's path parameters
// against its path, and its security and 401 answer against whether the
// route requires a key, which is also checked by calling the route without
// one.
func TestOpenAPIParametersAndAuth(t *testing.T) {
	doc, ops := loadDoc(t)
	for _, name := range []string{"bearerAuth", "operatorAuth"} {
		if s, ok := doc.Components.SecuritySchemes[name]; !ok || s.Type != "http" || s.Scheme != "bearer" {
			t.Errorf("components.securitySchemes.%s = %+v, want type http, scheme bearer", name, s)
		}
	}
	if !hasBearer(doc.Security) {
		t.Errorf("the document's default security %v does not require bearerAuth", doc.Security)
	}
	h := api.New(api.Config{OperatorKey: operatorKey}, nil, nil, nil, nil).Handler()
	ids := map[string]string{}
	for _, r := range routes {
		key := r.method + " " + r.pattern
		op, ok := ops[key]
		if !ok {
			continue // reported by TestOpenAPIDocumentsEveryRoute
		}
		if op.OperationID == "" {
			t.Errorf("%s has no operationId", key)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share operationId %q", key, other, op.OperationID)
		}
		ids[op.OperationID] = key

		var documented []string
		for _, p := range op.Parameters {
			if p.Ref != "" {
				name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/")
				if !ok {
					t.Errorf("%s: parameter $ref %q is not under #/components/parameters", key, p.Ref)
					continue
				}
				resolved, ok := doc.Components.Parameters[name]
				if !ok {
					t.Errorf("%s: parameter $ref %q does not resolve", key, p.Ref)
					continue
				}
				p = resolved
			}
			if p.In == "path" {
				if !p.Required {
					t.Errorf("%s: path parameter %s must be required", key, p.Name)
				}
				documented = append(documented, p.Name)
			}
		}
		var inPath []string
		for _, m := range wildcard.FindAllStringSubmatch(r.pattern, -1) {
			inPath = append(inPath, m[1])
		}
		slices.Sort(documented)
		slices.Sort(inPath)
		if !slices.Equal(documented, inPath) {
			t.Errorf("%s documents path parameters %v, want %v", key, documented, inPath)
		}

		if len(op.Responses) == 0 {
			t.Errorf("%s documents no responses", key)
		}
		_, has401 := op.Responses["401"]
		authDocumented := op.Security == nil && hasScheme(doc.Security, scheme(r.pattern)) || op.Security != nil && hasScheme(*op.Security, scheme(r.pattern))
		if authDocumented != r.auth || has401 != r.auth {
			t.Errorf("%s: requires a key: %v; documented security requires one: %v; documents 401: %v",
				key, r.auth, authDocumented, has401)
		}

		// Without a key, an authenticated route answers 401 before it
		// touches any store; the others answer without a store at all.
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(r.method, concrete(r.pattern), nil))
		if r.auth {
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s without a key: %d %s, want 401 application/problem+json", key, rec.Code, rec.Header().Get("Content-Type"))
			}
		} else if rec.Code != http.StatusOK {
			t.Errorf("%s without a key: %d, want 200", key, rec.Code)
		}
		var codes []string
		for c := range op.Responses {
			codes = append(codes, c)
		}
		if !slices.Contains(codes, fmt.Sprint(rec.Code)) {
			t.Errorf("%s answered %d, which is not among its documented responses %v", key, rec.Code, codes)
		}
	}
}

func hasBearer(reqs []map[string][]string) bool { return hasScheme(reqs, "bearerAuth") }

func hasScheme(reqs []map[string][]string, name string) bool {
	for _, r := range reqs {
		if _, ok := r[name]; ok {
			return true
		}
	}
	return false
}

// TestOpenAPIServed checks that the document is served as it is embedded.
func TestOpenAPIServed(t *testing.T) {
	rec := httptest.NewRecorder()
	api.New(api.Config{}, nil, nil, nil, nil).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.yaml", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Errorf("GET /v1/openapi.yaml: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), api.OpenAPI) {
		t.Error("GET /v1/openapi.yaml does not serve api.OpenAPI")
	}
}

// TestOpenAPIRefsResolve checks that every local $ref in the document points
// at something.
func TestOpenAPIRefsResolve(t *testing.T) {
	var root yaml.Node
	if err := yaml.Unmarshal(api.OpenAPI, &root); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	n := 0
	var walk func(*yaml.Node)
	walk = func(node *yaml.Node) {
		if node.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(node.Content); i += 2 {
				k, v := node.Content[i], node.Content[i+1]
				if k.Value == "$ref" && v.Kind == yaml.ScalarNode {
					n++
					if !strings.HasPrefix(v.Value, "#/") {
						t.Errorf("line %d: $ref %q is not local", v.Line, v.Value)
					} else if lookup(&root, v.Value) == nil {
						t.Errorf("line %d: $ref %q does not resolve", v.Line, v.Value)
					}
				}
			}
		}
		for _, c := range node.Content {
			walk(c)
		}
	}
	walk(&root)
	if n == 0 {
		t.Error("found no $ref; is the document complete?")
	}
}

// lookup resolves a local JSON pointer ("#/a/b") in a YAML document.
func lookup(root *yaml.Node, ref string) *yaml.Node {
	node := root
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		var next *yaml.Node
		switch node.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(node.Content); i += 2 {
				if node.Content[i].Value == tok {
					next = node.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(node.Content) {
				next = node.Content[i]
			}
		}
		if next == nil {
			return nil
		}
		node = next
	}
	return node
}

// loadSpec parses openapi.yaml with libopenapi into its OpenAPI 3.1 model.
func loadSpec(t testing.TB) (libopenapi.Document, *v3high.Document) {
	t.Helper()
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(data)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc, &model.Model
}

// The document is checked by an OpenAPI linter (libopenapi-validator,
// against the OpenAPI 3.1 meta-schema), and for what the meta-schema lets
// pass: a license, every tag an operation uses declared (and every declared
// tag used), every operation with a summary and a description.
func TestOpenAPILint(t *testing.T) {
	doc, model := loadSpec(t)
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("openapi.yaml: %s: %s", se.FieldPath, se.Reason)
			}
			t.Errorf("openapi.yaml: %s", e.Error())
		}
	}
	if model.Info.License == nil || model.Info.License.Name == "" {
		t.Error("info.license is missing")
	}
	declared := map[string]bool{}
	for _, tag := range model.Tags {
		declared[tag.Name] = true
	}
	used := map[string]bool{}
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			where := strings.ToUpper(method) + " " + path
			if op.Summary == "" {
				t.Errorf("%s has no summary", where)
			}
			if op.Description == "" {
				t.Errorf("%s has no description", where)
			}
			if len(op.Tags) == 0 {
				t.Errorf("%s has no tag", where)
			}
			for _, tag := range op.Tags {
				used[tag] = true
				if !declared[tag] {
					t.Errorf("%s uses tag %q, which the document does not declare", where, tag)
				}
			}
		}
	}
	for tag := range declared {
		if !used[tag] {
			t.Errorf("tag %q is declared but no operation uses it", tag)
		}
	}
}

// Every example of a request or response body (inline or a reference to
// components.examples) matches the body's schema.
func TestOpenAPIExamplesMatchSchemas(t *testing.T) {
	_, model := loadSpec(t)
	sv := schema_validation.NewSchemaValidator()
	check := func(where string, mt *v3high.MediaType) {
		if mt == nil || mt.Schema == nil {
			return
		}
		schema := mt.Schema.Schema()
		type example struct {
			name string
			node interface{ Decode(v any) error }
		}
		var examples []example
		if mt.Example != nil {
			examples = append(examples, example{"example", mt.Example})
		}
		for name, ex := range mt.Examples.FromOldest() {
			if ex.Value != nil {
				examples = append(examples, example{"examples." + name, ex.Value})
			}
		}
		for _, ex := range examples {
			var v any
			if err := ex.node.Decode(&v); err != nil {
				t.Errorf("%s %s: %v", where, ex.name, err)
				continue
			}
			if ok, verrs := sv.ValidateSchemaObject(schema, v); !ok {
				for _, e := range verrs {
					for _, se := range e.SchemaValidationErrors {
						t.Errorf("%s %s: %s: %s", where, ex.name, se.FieldPath, se.Reason)
					}
					if len(e.SchemaValidationErrors) == 0 {
						t.Errorf("%s %s: %s", where, ex.name, e.Error())
					}
				}
			}
		}
	}
	n := 0
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			where := strings.ToUpper(method) + " " + path
			if op.RequestBody != nil {
				for ct, mt := range op.RequestBody.Content.FromOldest() {
					check(where+" request "+ct, mt)
					n++
				}
			}
			if op.Responses == nil {
				continue
			}
			for code, resp := range op.Responses.Codes.FromOldest() {
				for ct, mt := range resp.Content.FromOldest() {
					check(where+" "+code+" "+ct, mt)
					n++
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no bodies found")
	}
}

var spec struct {
	once sync.Once
	v    validator.Validator
	err  error
}

// matchesSpec checks an answer of the API against the response openapi.yaml
// documents for its operation and status: its content type, body schema
// and headers. Requests the spec has no operation for (the tests' probes of
// unknown paths) are not checked.
func matchesSpec(t *testing.T, req *http.Request, res response) {
	t.Helper()
	for _, msg := range specMismatches(t, req, res) {
		t.Errorf("%s %s answered %d, not as openapi.yaml says: %s\n%s", req.Method, req.URL.Path, res.Status, msg, res.Body)
	}
}

// specMismatches returns how res differs from what openapi.yaml documents.
func specMismatches(t *testing.T, req *http.Request, res response) []string {
	t.Helper()
	spec.once.Do(func() {
		data, err := os.ReadFile("openapi.yaml")
		if err != nil {
			spec.err = err
			return
		}
		doc, err := libopenapi.NewDocument(data)
		if err != nil {
			spec.err = err
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			spec.err = fmt.Errorf("validator: %v", errs)
			return
		}
		spec.v = v
	})
	if spec.err != nil {
		t.Fatalf("openapi.yaml: %v", spec.err)
	}
	hres := &http.Response{StatusCode: res.Status, Header: res.Header, Body: io.NopCloser(bytes.NewReader(res.Body)), Request: req}
	var out []string
	if ok, errs := spec.v.ValidateHttpResponse(req, hres); !ok {
		for _, e := range errs {
			if e.ValidationType == "path" {
				continue
			}
			msg := e.Message
			for _, se := range e.SchemaValidationErrors {
				msg += fmt.Sprintf("; %s: %s", se.FieldPath, se.Reason)
			}
			out = append(out, msg+" ("+e.ValidationType+"/"+e.ValidationSubType+")")
		}
	}
	return out
}

// Injected: a real answer of GET /v1/reminders/{key}, then the same answer
// without its kind, and one with an undocumented status. Checked: the spec
// check passes the first and names what is wrong with the others, so the
// check that req runs on every answer can fail.
func TestResponsesCheckedAgainstSpec(t *testing.T) {
	b := setup(t)
	b.putReminder("water", reminder("Water", at("paris", "Europe/Paris", "10:30")))
	var seen *http.Request
	var got response
	b.checkResponse = func(t *testing.T, req *http.Request, res response) { seen, got = req, res }
	b.as("GET", "/v1/reminders/water", nil)
	require.NotNil(t, seen)
	require.Empty(t, specMismatches(t, seen, got))

	var body map[string]any
	require.NoError(t, json.Unmarshal(got.Body, &body))
	delete(body, "kind")
	tampered := got
	tampered.Body, _ = json.Marshal(body)
	require.NotEmpty(t, specMismatches(t, seen, tampered), "an answer without kind")
	require.Contains(t, strings.Join(specMismatches(t, seen, tampered), " "), "kind")

	teapot := got
	teapot.Status = http.StatusTeapot
	require.NotEmpty(t, specMismatches(t, seen, teapot), "an undocumented status")
}
