package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// -server takes mirrors, comma-separated: with the first one down the
// agent updates from the next.
func TestUpdateThroughMirrors(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	code, log := agentRun(t, append(d.args(s), "-server", "http://127.0.0.1:1,"+s.url))
	require.Equal(t, 0, code, log)
	assert.Contains(t, log, "mirror failed, trying the next")
	st := d.status(t)
	assert.Equal(t, "1.1.0", st.Installed.Version.String())
}

func TestServerURLs(t *testing.T) {
	got, err := serverURLs("http://a.example/, https://b.example:8443")
	require.NoError(t, err)
	assert.Equal(t, []string{"http://a.example", "https://b.example:8443"}, got)
	for _, bad := range []string{"http://a.example,", "http://a.example,ftp://b", "http://a.example,http://b?x=1"} {
		_, err := serverURLs(bad)
		assert.Error(t, err, bad)
	}
}
