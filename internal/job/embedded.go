package job

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded is a NATS server inside this process, with JetStream on disk
// in dir and no listener: only this process connects to it.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts the embedded server (name names it in JetStream).
func StartEmbedded(dir, name string) (*Embedded, error) {
	srv, err := server.NewServer(&server.Options{ServerName: name, DontListen: true, JetStream: true, StoreDir: dir,
		NoSigs: true, NoLog: true})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("the embedded NATS server did not start within 30s")
	}
	return &Embedded{srv: srv}, nil
}

// Connect opens a connection to the embedded server, in process.
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(e.srv), nats.Name(name))
	if err != nil {
		return nil, fmt.Errorf("connecting to the embedded NATS server: %w", err)
	}
	return nc, nil
}

// Close stops the server, its JetStream state flushed to disk.
func (e *Embedded) Close() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Connect opens a connection to an external NATS (urls comma-separated),
// reconnecting for as long as the process runs.
func Connect(urls, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(urls, nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", urls, err)
	}
	return nc, nil
}
