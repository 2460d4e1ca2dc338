package verify

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A server that is down is one log line an operator can read: the URL once,
// then why, with the network error still in the chain for callers that
// classify it (retryable or not).
func TestFetchServerDownNamesURLOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + l.Addr().String() + "/metadata/timestamp.json"
	require.NoError(t, l.Close()) // nothing listens there now

	_, err = (&HTTPFetcher{Retries: 1, Backoff: 1}).Fetch(context.Background(), url, 100)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrFetchTransient)
	var netErr net.Error
	assert.ErrorAs(t, err, &netErr, "the dial error stays in the chain")
	assert.Equal(t, 1, strings.Count(err.Error(), url), err.Error())
	assert.Contains(t, err.Error(), "2 tries")
	assert.Contains(t, err.Error(), "connection refused")
}
