// Package e2e runs Chime end to end on real Redis and MariaDB: coordinators,
// workers and gateways assembled in the test process or built from cmd/ and
// run as processes that are stopped, killed and paused, with webhook, APNs
// and FCM servers on loopback. Its tests only; it exports nothing.
package e2e
