package queue

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// The slot is Redis Cluster's: CRC16/XMODEM's check value and the slot
// CLUSTER KEYSLOT gives for "foo" and "123456789".
func TestSlot(t *testing.T) {
	require.EqualValues(t, 0x31C3%slots, Slot("123456789"))
	require.EqualValues(t, 12182, Slot("foo"))
	require.EqualValues(t, 0, Slot(""))
}

func TestNames(t *testing.T) {
	require.Equal(t, []string{"chime-groups"}, Names("chime-groups", 1))
	require.Equal(t, []string{"chime-groups"}, Names("chime-groups", 0))
	for _, n := range []int{2, 3, 6, 16, MaxQueues} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			names := Names("chime-groups", n)
			require.Len(t, names, n)
			require.Contains(t, names, "chime-groups", "the configured queue is one of them")
			for i, name := range names {
				require.Equal(t, i, int(Slot(name))*n/slots, "%s in slice %d of %d", name, i, n)
			}
			require.Equal(t, names, Names("chime-groups", n), "the same names every time")
		})
	}
	require.Len(t, Names("q", 1000), MaxQueues)
}

func TestPickIsStableAndSpreads(t *testing.T) {
	qs := Names("chime-groups", 4)
	seen := map[string]int{}
	for i := range 4000 {
		id := "o" + strconv.Itoa(i) + ":g0:a1"
		q := pick(qs, id)
		require.Equal(t, q, pick(qs, id))
		seen[q]++
	}
	require.Len(t, seen, 4)
	for q, n := range seen {
		require.InDelta(t, 1000, n, 150, q)
	}
}
