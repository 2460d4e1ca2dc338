package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClientKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4711}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 4711}, "192.0.2.7/32"},
		// One IPv6 subscriber has a whole /64: all of it is one client.
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff:ffff:ffff:ffff"), Port: 2}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 1}, "2001:db8:1:3::/64"},
	} {
		assert.Equal(t, tc.want, clientKey(tc.addr).String(), tc.addr.String())
	}
	a, _ := net.Pipe()
	defer a.Close()
	assert.Equal(t, netip.Prefix{}, clientKey(a.RemoteAddr()), "a non-IP address")
}

// The cap counts open connections, not requests, and a closed connection
// gives its place back, once however often it is closed.
func TestAddrLimiterCounts(t *testing.T) {
	lim := newAddrLimiter(2, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	lln := lim.listener(ln)
	key := netip.MustParsePrefix("127.0.0.1/32")

	accept := func() net.Conn {
		t.Helper()
		client, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { client.Close() })
		c, err := lln.Accept()
		require.NoError(t, err)
		return c
	}
	c1, c2 := accept(), accept()
	assert.Equal(t, 2, lim.count(key))
	assert.False(t, lim.acquire(key), "a third connection past the cap")
	require.NoError(t, c1.Close())
	c1.Close()
	assert.Equal(t, 1, lim.count(key), "closing twice releases once")
	c3 := accept()
	require.NoError(t, c2.Close())
	require.NoError(t, c3.Close())
	assert.Zero(t, lim.count(key))
	assert.Empty(t, lim.open, "no entry kept for an address without connections")
}

// One address holding its cap of connections is refused more, on every
// listener, while other addresses are served; a closed connection makes
// room again.
func TestConnCapPerAddress(t *testing.T) {
	repo := newRepo(t, 1<<10, time.Hour)
	logs := &syncBuffer{}
	cfg := testConfig(t, repo, newClock(t0.Add(time.Minute)))
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	cfg.MaxConnsPerAddr = 2
	r := start(t, cfg, nil)
	addr := strings.TrimPrefix(r.httpURL, "http://")

	// get sends one request on conn and reads the answer.
	get := func(conn net.Conn, br *bufio.Reader) (int, error) {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET /metadata/timestamp.json HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	type client struct {
		net.Conn
		br *bufio.Reader
	}
	dial := func(to string, from net.IP) client {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from}}
		conn, err := d.Dial("tcp", to)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		return client{conn, bufio.NewReader(conn)}
	}
	local := net.IPv4(127, 0, 0, 1)

	// Two connections, each kept alive over several requests.
	held := []client{dial(addr, local), dial(addr, local)}
	for range 3 {
		for _, c := range held {
			code, err := get(c, c.br)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, code)
		}
	}
	// A third is closed before it is served, on the health listener too.
	for _, to := range []string{addr, strings.TrimSuffix(strings.TrimPrefix(r.healthURL, "http://"), "/healthz")} {
		c := dial(to, local)
		_, err := get(c, c.br)
		assert.Error(t, err, "a connection past the cap was served on %s", to)
	}
	assert.Equal(t, 1, logCount(logs.String(), "client at its connection cap: closing its new connections"), "one warning per episode")
	if runtime.GOOS == "linux" { // the whole of 127/8 is local there
		c := dial(addr, net.IPv4(127, 0, 0, 2))
		code, err := get(c, c.br)
		require.NoError(t, err, "another address is not capped")
		assert.Equal(t, http.StatusOK, code)
	}

	// Closing one makes room: the server sees the close and releases it.
	require.NoError(t, held[0].Close())
	require.Eventually(t, func() bool {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer conn.Close()
		code, err := get(conn, bufio.NewReader(conn))
		return err == nil && code == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond, "the closed connection's place was not given back")
}
