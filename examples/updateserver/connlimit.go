package main

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
)

// addrLimiter caps the open connections per client address, shared by all
// listeners. Without it one client that opens connections and stops
// reading holds a socket and an open file per connection until the
// process runs out of descriptors, and then every device is refused.
type addrLimiter struct {
	max int
	log *slog.Logger

	mu   sync.Mutex
	open map[netip.Prefix]*addrConns
}

// addrConns is what the limiter knows of one client address.
type addrConns struct {
	n      int
	warned bool // a refusal was logged since the address last had no connection
}

func newAddrLimiter(max int, log *slog.Logger) *addrLimiter {
	return &addrLimiter{max: max, log: log, open: map[netip.Prefix]*addrConns{}}
}

// clientKey is what the cap counts by: the IPv4 address, or the /64 of an
// IPv6 address, since one IPv6 subscriber holds a whole /64 and could
// otherwise open each connection from a new address.
func clientKey(addr net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		// Not an IP listener (a test's pipe): one key for all.
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// acquire counts one more connection from key, unless key is at the cap.
func (l *addrLimiter) acquire(key netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.open[key]
	if c == nil {
		c = &addrConns{}
		l.open[key] = c
	}
	if c.n >= l.max {
		if !c.warned {
			// Once per episode: a client hammering at its cap must not
			// flood the log.
			c.warned = true
			l.log.Warn("client at its connection cap: closing its new connections", "client", key.String(), "max_conns_per_addr", l.max)
		}
		return false
	}
	c.n++
	return true
}

func (l *addrLimiter) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.open[key]
	c.n--
	if c.n == 0 {
		delete(l.open, key)
	}
}

// count returns the connections open from key.
func (l *addrLimiter) count(key netip.Prefix) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.open[key]; c != nil {
		return c.n
	}
	return 0
}

// listener wraps ln so that each accepted connection counts against its
// address until it is closed. Connections past the cap are closed at once,
// before a TLS handshake or a request is read, so that they cost nothing.
func (l *addrLimiter) listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, lim: l}
}

type limitListener struct {
	net.Listener
	lim *addrLimiter
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		if !ln.lim.acquire(key) {
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: sync.OnceFunc(func() { ln.lim.release(key) })}, nil
	}
}

// limitedConn releases its place under the cap when closed, once however
// often Close is called.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// ReadFrom keeps net/http's sendfile path: it looks for an io.ReaderFrom
// on the connection.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite keeps net/http's lingering close, which avoids a reset that
// would destroy a response the client has not read yet.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
