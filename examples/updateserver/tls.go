package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// loadTLS builds the HTTPS configuration; with caFile set, a client
// certificate chaining to one of its CAs is required.
func loadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// Set here because http.Server adds "h2" only to the outer
		// config, not to what GetConfigForClient returns.
		NextProtos: []string{"h2", "http/1.1"},
	}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA: no PEM certificate in %s", caFile)
	}
	conf.ClientCAs = pool
	conf.ClientAuth = tls.RequireAndVerifyClientCert
	return conf, nil
}

// tlsMaterial is the server's TLS configuration from files, replaceable
// while serving: each handshake uses the material loaded last.
type tlsMaterial struct {
	certFile, keyFile, caFile string
	cur                       atomic.Pointer[tls.Config]
}

func newTLSMaterial(certFile, keyFile, caFile string) (*tlsMaterial, error) {
	m := &tlsMaterial{certFile: certFile, keyFile: keyFile, caFile: caFile}
	if err := m.reload(); err != nil {
		return nil, err
	}
	return m, nil
}

// reload reads the files again; on error the material in use stays.
func (m *tlsMaterial) reload() error {
	conf, err := loadTLS(m.certFile, m.keyFile, m.caFile)
	if err != nil {
		return err
	}
	m.cur.Store(conf)
	return nil
}

// config is the configuration to serve with. Whether client certificates
// are required is fixed at start (--client-ca given or not); only the
// certificates and CAs change at a reload.
func (m *tlsMaterial) config() *tls.Config {
	cur := m.cur.Load()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: cur.ClientAuth,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return m.cur.Load(), nil
		},
	}
}

// reloadOnHangup reloads m at every SIGHUP until the returned function is
// called.
func reloadOnHangup(m *tlsMaterial, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-hup:
				if err := m.reload(); err != nil {
					log.Error("TLS reload refused; keeping the current certificates", "err", err)
				} else {
					log.Info("TLS material reloaded", "cert", m.certFile, "client_ca", m.caFile)
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}
