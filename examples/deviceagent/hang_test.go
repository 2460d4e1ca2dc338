package main

import (
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deadServer returns the URL of a closed port on 127.0.0.1: a server that
// is down.
func deadServer(t *testing.T) string {
	ln := listenLocal(t)
	require.NoError(t, ln.Close())
	return "http://" + ln.Addr().String()
}

func listenLocal(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

// silentServer accepts connections on 127.0.0.1 and never sends a byte,
// as a hostile or wedged server does. It returns the base URL.
func silentServer(t *testing.T) string {
	ln := listenLocal(t)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// Fault 1 of issue 13: a server that accepts the connection and never
// sends response headers blocked the agent forever. With -timeout the wait
// for headers is bounded and the cycle ends as a network failure.
func TestServerThatNeverAnswers(t *testing.T) {
	s := newServer(t, 1024)
	d := newDevice(t, s)
	code, out := runBinary(t, append(d.args(s), "-server", silentServer(t), "-timeout", "300ms", "-retries", "0")...)
	assert.Equal(t, exitNetwork, code, out)
	assert.Contains(t, out, "network failure (retryable)")
	assert.Contains(t, out, "timeout awaiting response headers")
	assert.NotContains(t, out, "metadata refused")
}
