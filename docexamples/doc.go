// Package docexamples runs the shell examples of README.md and docs/*.md
// against a live coordinator, so that an example that no longer works fails
// a test. It has no code of its own; see examples_test.go.
//
// Every ```sh, ```bash and ```console block runs, in the order of its file,
// with the coordinator's URL in CHIME_API_URL, an app's key in
// CHIME_API_KEY (also API and KEY) and the app's ID in APP, chimectl on PATH and curl failing
// on any answer that is not 2xx. A block that cannot run against a
// coordinator (make, kubectl, benchmarks, servers of its own) says so on
// the line before its fence:
//
//	<!-- not run: the reason -->
package docexamples
