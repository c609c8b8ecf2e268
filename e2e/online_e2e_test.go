package e2e

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/status"
)

// statusOf returns an occurrence's aggregates through the API.
func (b *bundle) statusOf(occ int64) map[string]map[string]int64 {
	b.t.Helper()
	var out struct {
		Channels map[string]map[string]int64 `json:"channels"`
	}
	require.Equal(b.t, http.StatusOK, b.call(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d/status", occ), nil, &out))
	return out.Channels
}

// inboxOf returns a user's inbox through the API.
func (b *bundle) inboxOf(user string) api.InboxContents {
	b.t.Helper()
	var out api.InboxContents
	require.Equal(b.t, http.StatusOK, b.call(http.MethodGet, "/v1/users/"+user+"/inbox", nil, &out))
	return out
}

func (b *bundle) messagesOf(user string) []status.Detail {
	b.t.Helper()
	var out struct{ Messages []status.Detail }
	require.Equal(b.t, http.StatusOK, b.call(http.MethodGet, "/v1/users/"+user+"/messages", nil, &out))
	return out.Messages
}

// A real fire reaches the online users over their WebSocket connections on
// two gateways and the offline ones through the fallback channel (a real
// webhook receiver) and their inbox; acks and a read receipt over the socket
// show in the inbox and in the status, per user and per occurrence.
func TestOnlineDeliveryThroughGateways(t *testing.T) {
	b := setupOnline(t)
	b.startCoordinator("c1")
	b.startWorker("w1")
	urls := []string{b.startGateway("g1"), b.startGateway("g2")}
	users := userIDs("u", 30)
	clients := map[string]*gateway.Client{}
	for i, u := range users[:20] {
		c := b.connect(urls[i%2], u)
		require.Empty(t, welcome(t, c), "nothing waiting for %s", u)
		clients[u] = c
	}
	fireAt := b.fireFor("live", users, nil)

	ctx := context.Background()
	var msgID string
	for u, c := range clients {
		f := nextMessage(t, c, 30*time.Second)
		require.Equal(t, "live", f.Message.Reminder, u)
		require.Empty(t, f.Message.ForUser)
		require.False(t, f.Received.Before(fireAt), "delivered before the instant")
		msgID = f.Message.ID
		require.NoError(t, c.Ack(ctx, f.Message.ID))
	}
	occ := at(b.waitDone("live", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)
	require.Equal(t, fmt.Sprintf("o%d", occ[0].ID), msgID)
	require.EqualValues(t, 30, occ[0].Delivered)

	// The fallback got exactly the offline users, once each.
	st := b.sink.Stats()
	require.Equal(t, 10, st.Users)
	require.Zero(t, st.Duplicates)
	for _, u := range users[20:] {
		require.Equal(t, 1, b.sink.Count(u), u)
		in := b.inboxOf(u)
		require.Len(t, in.Pending, 1, "the offline user's inbox holds the message")
		require.Equal(t, msgID, in.Pending[0].ID)
	}
	testenv.WaitUntil(t, 10*time.Second, "acks recorded", func() bool {
		return b.statusOf(occ[0].ID)[status.Gateway][status.Delivered] == 20
	})
	require.Equal(t, map[string]map[string]int64{
		status.Gateway: {status.Sent: 20, status.Delivered: 20},
		status.Inbox:   {status.Pending: 10},
		status.Push:    {status.Sent: 10},
	}, b.statusOf(occ[0].ID))

	// An acknowledged message is unread, not pending; a read receipt over
	// the socket clears it.
	in := b.inboxOf("u0")
	require.Empty(t, in.Pending)
	require.Len(t, in.Unread, 1)
	require.Equal(t, []status.Detail{{Message: msgID, Occurrence: occ[0].ID, Channel: status.Gateway, State: status.Delivered,
		UpdatedAt: b.messagesOf("u0")[0].UpdatedAt}}, b.messagesOf("u0"))
	require.NoError(t, clients["u0"].Read(ctx, msgID))
	testenv.WaitUntil(t, 10*time.Second, "read receipt applied", func() bool {
		in := b.inboxOf("u0")
		return len(in.Unread) == 0 && len(in.Pending) == 0
	})
	require.Equal(t, status.Read, b.messagesOf("u0")[0].State)
	require.EqualValues(t, 1, b.statusOf(occ[0].ID)[status.Gateway][status.Read])
	// Another app's key sees none of it.
	other := b.otherApp()
	var out api.InboxContents
	require.Equal(t, http.StatusOK, b.callAs(other, http.MethodGet, "/v1/users/u25/inbox", nil, &out))
	require.Empty(t, out.Pending)
	require.Equal(t, http.StatusNotFound, b.callAs(other, http.MethodGet, fmt.Sprintf("/v1/occurrences/%d/status", occ[0].ID), nil, nil))
}

// A reminder marked deliver-when-online is not pushed to an offline user:
// it waits in the inbox, goes out over the socket when the user connects,
// and the client's ack and the API's read receipt clear it.
func TestDeliverWhenOnlineWaitsForReconnect(t *testing.T) {
	b := setupOnline(t)
	b.startCoordinator("c1")
	b.startWorker("w1")
	url := b.startGateway("g1")
	fireAt := b.fireFor("quiet", []string{"alice", "bob"}, map[string]any{"deliver_when_online": true})
	bob := b.connect(url, "bob")
	welcome(t, bob)
	occ := at(b.waitDone("quiet", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)
	id := fmt.Sprintf("o%d", occ[0].ID)
	require.Equal(t, id, nextMessage(t, bob, 10*time.Second).Message.ID)
	require.Zero(t, b.sink.Stats().Users, "nothing pushed")
	in := b.inboxOf("alice")
	require.Len(t, in.Pending, 1)
	require.Equal(t, "quiet", in.Pending[0].Reminder)

	// Alice comes online: the message is replayed before the welcome.
	alice := b.connect(url, "alice")
	replayed := welcome(t, alice)
	require.Len(t, replayed, 1)
	require.Equal(t, id, replayed[0].Message.ID)
	require.NoError(t, alice.Ack(context.Background(), id))
	testenv.WaitUntil(t, 10*time.Second, "ack applied", func() bool { return len(b.inboxOf("alice").Pending) == 0 })
	require.Len(t, b.inboxOf("alice").Unread, 1)
	// A second connection replays nothing.
	require.Empty(t, welcome(t, b.connect(url, "alice")))

	var read struct{ Read []string }
	require.Equal(t, http.StatusOK, b.call(http.MethodPost, "/v1/users/alice/inbox/read", map[string]any{"ids": []string{id, "o999999"}}, &read))
	require.Equal(t, []string{id}, read.Read)
	require.Empty(t, b.inboxOf("alice").Unread)
	// Bob's message was sent over the socket (he never acknowledged it);
	// Alice's waited in the inbox, was sent on reconnect, delivered and
	// read through the API. Nothing was pushed. (The gateway records the
	// ack's status after applying it to the inbox, so it may come last.)
	want := map[string]map[string]int64{
		status.Gateway: {status.Sent: 2, status.Delivered: 1},
		status.Inbox:   {status.Pending: 1, status.Read: 1},
	}
	testenv.WaitUntil(t, 10*time.Second, "the counts", func() bool { return reflect.DeepEqual(want, b.statusOf(occ[0].ID)) })
}

// A reminder that asks for it reaches an offline user's contact: online
// contacts over their socket (with for_user), offline ones in their inbox.
// Users who are online do not involve their contacts.
func TestContactsReachedWhenUserOffline(t *testing.T) {
	b := setupOnline(t)
	b.startCoordinator("c1")
	b.startWorker("w1")
	url := b.startGateway("g1")
	for _, c := range [][2]string{{"grandpa", "daughter"}, {"grandpa", "son"}, {"online-user", "neighbour"}} {
		require.Equal(t, http.StatusCreated, b.call(http.MethodPut, "/v1/users/"+c[0]+"/contacts/"+c[1], nil, nil))
	}
	require.Equal(t, http.StatusOK, b.call(http.MethodPut, "/v1/users/grandpa/contacts/son", nil, nil), "idempotent")
	var list struct{ Contacts []string }
	require.Equal(t, http.StatusOK, b.call(http.MethodGet, "/v1/users/grandpa/contacts", nil, &list))
	require.Equal(t, []string{"daughter", "son"}, list.Contacts)

	daughter := b.connect(url, "daughter")
	welcome(t, daughter)
	neighbour := b.connect(url, "neighbour")
	welcome(t, neighbour)
	onlineUser := b.connect(url, "online-user")
	welcome(t, onlineUser)
	fireAt := b.fireFor("pills", []string{"grandpa", "online-user"}, map[string]any{"notify_contacts": true, "deliver_when_online": true})

	f := nextMessage(t, daughter, 30*time.Second)
	require.Equal(t, "grandpa", f.Message.ForUser)
	require.Equal(t, "pills", f.Message.Reminder)
	require.Empty(t, nextMessage(t, onlineUser, 10*time.Second).Message.ForUser)
	occ := at(b.waitDone("pills", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)
	son := b.inboxOf("son")
	require.Len(t, son.Pending, 1, "the offline contact finds it in the inbox")
	require.Equal(t, "grandpa", son.Pending[0].ForUser)
	require.Len(t, b.inboxOf("grandpa").Pending, 1)
	require.Len(t, b.inboxOf("neighbour").Pending, 0, "an online user's contacts are not involved")
	select {
	case f := <-neighbour.Frames:
		t.Fatalf("the neighbour got %+v", f)
	default:
	}
	require.Equal(t, http.StatusNoContent, b.call(http.MethodDelete, "/v1/users/grandpa/contacts/son", nil, nil))
	require.Equal(t, http.StatusNotFound, b.call(http.MethodDelete, "/v1/users/grandpa/contacts/son", nil, nil))
}

// With the push channel (local APNs and FCM servers) as the fallback: users
// online get the reminder over the gateway and are not pushed, even with a
// phone registered; offline users are pushed to their devices; an offline
// user without a device is recorded as failed on push and finds the
// message in the inbox.
func TestOnlineWithPushFallback(t *testing.T) {
	b := setupOnline(t)
	srv := b.usePush()
	b.startCoordinator("c1")
	b.startWorker("w1")
	url := b.startGateway("g1")
	iphone := func(n int) string { return fmt.Sprintf("%064x", n) }
	b.putDevice("on1", "iphone", map[string]any{"platform": "ios", "token": iphone(1)})
	b.putDevice("off-ios", "iphone", map[string]any{"platform": "ios", "token": iphone(2)})
	b.putDevice("off-android", "pixel", map[string]any{"platform": "android", "token": "fcm-off-android"})
	on1, on2 := b.connect(url, "on1"), b.connect(url, "on2")
	welcome(t, on1)
	welcome(t, on2)

	fireAt := b.fireFor("asr", []string{"on1", "on2", "off-ios", "off-android", "off-none"}, nil)
	require.Equal(t, "asr", nextMessage(t, on1, 30*time.Second).Message.Reminder)
	require.Equal(t, "asr", nextMessage(t, on2, 10*time.Second).Message.Reminder)
	occ := at(b.waitDone("asr", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)
	require.Empty(t, srv.apns.Pushes(iphone(1)), "an online user is not pushed")
	require.Len(t, srv.apns.Pushes(iphone(2)), 1)
	require.Len(t, srv.fcm.Messages("fcm-off-android"), 1)
	require.Equal(t, map[string]map[string]int64{
		status.Gateway: {status.Sent: 2},
		status.Inbox:   {status.Pending: 3},
		status.Push:    {status.Sent: 2, status.Failed: 1},
	}, b.statusOf(occ[0].ID))
	require.Len(t, b.inboxOf("off-none").Pending, 1)
}
