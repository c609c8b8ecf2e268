package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/sender/apns"
	"github.com/chime-dev/chime/sender/apns/apnstest"
	"github.com/chime-dev/chime/sender/fcm/fcmtest"
	"github.com/chime-dev/chime/sender/push"
	"github.com/chime-dev/chime/store"
)

// With -offline, users who never connect are reached through the push
// fallback: each has one device, iOS and Android in turn, on the local APNs
// and FCM servers this process starts (pushServers), configured through
// files as in production (the .p8 key, the APNs server's certificate, the
// service account key). Their inbox copies wait for them as for any
// offline user.

// pushServers are the local APNs and FCM servers.
type pushServers struct {
	apns *apnstest.Server
	fcm  *fcmtest.Server
}

const (
	apnsKeyID, apnsTeamID, apnsTopic = "WSLOAD0001", "WSLOADTEAM", "dev.chime.wsload"
	fcmProject                       = "chime-wsload"
)

// startPush starts the servers, writes the files the push channel reads
// into dir and returns the push configuration that reaches the servers.
// No rate limit is set: the run measures Chime, not a provider's quota.
func startPush(dir string) (*pushServers, chime.PushConfig, error) {
	key, pub, err := apnstest.NewKey()
	if err != nil {
		return nil, chime.PushConfig{}, err
	}
	s := &pushServers{apns: apnstest.New(apnstest.Config{Key: pub, KeyID: apnsKeyID, TeamID: apnsTeamID, Topic: apnsTopic, Discard: true})}
	if s.fcm, err = fcmtest.New(fcmProject, true); err != nil {
		s.apns.Close()
		return nil, chime.PushConfig{}, err
	}
	files := map[string][]byte{"AuthKey.p8": key, "apns-ca.pem": s.apns.CertPEM(), "service-account.json": s.fcm.ServiceAccount()}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			s.Close()
			return nil, chime.PushConfig{}, err
		}
	}
	return s, chime.PushConfig{
		APNSKeyFile: filepath.Join(dir, "AuthKey.p8"), APNSKeyID: apnsKeyID, APNSTeamID: apnsTeamID, APNSTopic: apnsTopic,
		APNSHost: s.apns.URL, APNSCAFile: filepath.Join(dir, "apns-ca.pem"), APNSConns: apns.DefaultConns,
		FCMProject: fcmProject, FCMCredentialsFile: filepath.Join(dir, "service-account.json"), FCMEndpoint: s.fcm.Endpoint(),
		RetryFor: push.DefaultRetryFor,
	}, nil
}

func (s *pushServers) Close() {
	s.apns.Close()
	s.fcm.Close()
}

// accepted counts the pushes both servers accepted.
func (s *pushServers) accepted() int {
	a, _ := s.apns.Counts()
	f, _, _ := s.fcm.Counts()
	return a + f
}

// registerDevices puts each offline user's device through the API, 16
// requests at a time.
func registerDevices(ctx context.Context, cl *api.Client, users []string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for k, u := range users {
		in := api.DeviceInput{Platform: store.PlatformIOS, Token: fmt.Sprintf("%064x", k)}
		if k%2 == 1 {
			in = api.DeviceInput{Platform: store.PlatformAndroid, Token: fmt.Sprintf("fcm-wsload-%d", k)}
		}
		g.Go(func() error { return cl.Do(gctx, http.MethodPut, "/v1/users/"+u+"/devices/phone", in, nil) })
	}
	return g.Wait()
}
