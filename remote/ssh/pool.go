package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rustypipe/rustypipe/exec"
)

// host is one host of the pool. Its mutable fields are guarded by
// Backend.mu.
type host struct {
	t     target
	keys  []*keyFile
	limit int // concurrency_per_host

	active     int           // tasks holding a slot
	conn       *conn         // nil when not connected
	connecting chan struct{} // non-nil while a connection is being made; closed when done
	err        error         // why the last connection attempt failed
	downUntil  time.Time     // skip the host until then
	reported   bool          // the current failure has been logged
}

// conn is an established connection to a host.
type conn struct {
	client *gossh.Client
	uname  string        // `uname -sm` of the host
	done   chan struct{} // closed when the connection has ended
}

// usableLocked reports whether h may be given tasks now.
func (h *host) usableLocked(now time.Time) bool {
	return h.conn != nil || h.connecting != nil || !now.Before(h.downUntil)
}

// notifyLocked wakes every Run waiting for a slot.
func (b *Backend) notifyLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// acquire takes a slot on the least-loaded usable host with room (ties go
// to the host listed first) and returns it connected. It waits while every
// usable host is full. A host that cannot be connected is marked down,
// reported once and skipped. The error is context.Cause(ctx) wrapped, or a
// *noHostError when no host is usable.
func (b *Backend) acquire(ctx context.Context, task string) (*host, *conn, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, nil, &exec.StartError{Backend: "ssh", Task: task, Msg: "backend is closed"}
		}
		now := time.Now()
		var best *host
		var errs []error
		for _, h := range b.hosts {
			if !h.usableLocked(now) {
				errs = append(errs, h.err)
				continue
			}
			if h.active < h.limit && (best == nil || h.active < best.active) {
				best = h
			}
		}
		if len(errs) == len(b.hosts) {
			b.mu.Unlock()
			return nil, nil, &noHostError{errs: errs}
		}
		if best == nil {
			wake := b.wake
			b.mu.Unlock()
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return nil, nil, exec.StopError(ctx, "ssh", task, "not started")
			}
		}
		best.active++
		b.mu.Unlock()

		c, err := b.connect(ctx, best)
		if err == nil {
			return best, c, nil
		}
		b.release(best)
		if ctx.Err() != nil {
			return nil, nil, exec.StopError(ctx, "ssh", task, "not started")
		}
	}
}

// release gives back a slot taken by acquire.
func (b *Backend) release(h *host) {
	b.mu.Lock()
	h.active--
	b.notifyLocked()
	b.mu.Unlock()
}

// connect returns h's connection, making it if needed. Concurrent callers
// share one attempt, which ctx does not bound: a caller whose ctx is done
// returns early and leaves the attempt to the others.
func (b *Backend) connect(ctx context.Context, h *host) (*conn, error) {
	b.mu.Lock()
	if h.conn != nil {
		c := h.conn
		b.mu.Unlock()
		return c, nil
	}
	if b.closed {
		b.mu.Unlock()
		return nil, errors.New("ssh: backend is closed")
	}
	if !h.usableLocked(time.Now()) {
		err := h.err
		b.mu.Unlock()
		return nil, err
	}
	if h.connecting == nil {
		h.connecting = make(chan struct{})
		b.wg.Add(1)
		go b.dialHost(h, h.connecting)
	}
	wait := h.connecting
	b.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if h.conn != nil {
		return h.conn, nil
	}
	return nil, h.err
}

// dialHost makes h's connection and records the outcome.
func (b *Backend) dialHost(h *host, done chan struct{}) {
	defer b.wg.Done()
	c, err := b.dial(h)
	b.mu.Lock()
	defer b.mu.Unlock()
	defer close(done)
	h.connecting = nil
	defer b.notifyLocked()
	if err == nil && b.closed {
		c.client.Close()
		err = errors.New("backend is closed")
	}
	if err == nil && b.uname != "" && c.uname != b.uname {
		c.client.Close()
		err = fmt.Errorf("ssh: host %s runs %q but the pool's other hosts run %q: "+
			"the hosts of one backend must be alike, since they share cache entries; put them in separate backends",
			h.t.name, c.uname, b.uname)
	}
	if err != nil {
		h.err = err
		h.downUntil = time.Now().Add(downRetry)
		if !h.reported && !b.closed {
			h.reported = true
			b.log(fmt.Sprintf("ssh: host %s is unusable, skipping it: %v", h.t.name, err))
		}
		return
	}
	if h.reported {
		b.log(fmt.Sprintf("ssh: host %s is reachable again", h.t.name))
	}
	h.reported, h.err = false, nil
	if b.uname == "" {
		b.uname = c.uname
	}
	h.conn = c
	b.wg.Add(2)
	go b.watch(h, c)
	go b.keepalive(c)
}

// watch forgets h's connection when it ends, so that the next task
// reconnects.
func (b *Backend) watch(h *host, c *conn) {
	defer b.wg.Done()
	err := c.client.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	// Closed under the lock, after h.conn is cleared: whoever sees done
	// closed will not be handed this connection again.
	defer close(c.done)
	if h.conn == c {
		h.conn = nil
		if !b.closed {
			b.log(fmt.Sprintf("ssh: connection to host %s lost: %v", h.t.name, err))
		}
		b.notifyLocked()
	}
}

// keepalive sends keepalive@openssh.com requests and closes the connection
// when keepaliveCountMax of them in a row go unanswered. Any reply, even a
// refusal, shows that the server is alive.
func (b *Backend) keepalive(c *conn) {
	defer b.wg.Done()
	tick := time.NewTicker(keepaliveInterval)
	defer tick.Stop()
	misses := 0
	for {
		select {
		case <-tick.C:
		case <-c.done:
			return
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(keepaliveInterval)
		select {
		case err := <-reply:
			timer.Stop()
			if err != nil {
				c.client.Close()
				return
			}
			misses = 0
		case <-timer.C:
			if misses++; misses >= keepaliveCountMax {
				c.client.Close()
				return
			}
		case <-c.done:
			timer.Stop()
			return
		}
	}
}

// dial connects to h, checks its host key, authenticates and probes
// `uname -sm`.
func (b *Backend) dial(h *host) (*conn, error) {
	ctx, cancel := context.WithTimeout(b.ctx, connectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", h.t.addr)
	if err != nil {
		return nil, &connectError{host: h.t.label(), op: "dial", err: err}
	}
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	auth := &authAttempt{files: h.keys, agentSock: b.agent}
	defer auth.close()
	var keyErr error
	cfg := &gossh.ClientConfig{
		User: h.t.user,
		Auth: []gossh.AuthMethod{auth.method()},
		HostKeyCallback: func(hostname string, remote net.Addr, key gossh.PublicKey) error {
			keyErr = b.kh.check(h.t, hostname, remote, key)
			return keyErr
		},
		HostKeyAlgorithms: b.kh.algorithms(h.t.addr),
	}
	cc, chans, reqs, err := gossh.NewClientConn(nc, h.t.addr, cfg)
	if err != nil {
		switch {
		case keyErr != nil:
			return nil, keyErr
		case auth.called && strings.Contains(err.Error(), "unable to authenticate"):
			return nil, auth.refused(h.t)
		}
		return nil, &connectError{host: h.t.label(), op: "ssh handshake", err: err}
	}
	client := gossh.NewClient(cc, chans, reqs)
	out, status, errOut, err := control(ctx, client, "uname -sm")
	switch {
	case err != nil:
	case status != 0:
		err = fmt.Errorf("exit status %d: %s", status, errOut)
	case strings.TrimSpace(out) == "":
		err = errors.New("it printed nothing")
	}
	if err != nil {
		client.Close()
		return nil, &connectError{host: h.t.label(), op: "probe the host with uname -sm", err: err}
	}
	if !stop() {
		client.Close()
		return nil, &connectError{host: h.t.label(), op: "connect", err: context.Cause(ctx)}
	}
	nc.SetDeadline(time.Time{})
	return &conn{client: client, uname: strings.Join(strings.Fields(out), " "), done: make(chan struct{})}, nil
}

// poolUname returns the pool's `uname -sm`, connecting to the hosts in
// order until one answers if none has yet.
func (b *Backend) poolUname(ctx context.Context) (string, error) {
	b.mu.Lock()
	uname, hosts := b.uname, b.hosts
	b.mu.Unlock()
	if uname != "" {
		return uname, nil
	}
	var errs []error
	for _, h := range hosts {
		if _, err := b.connect(ctx, h); err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("ssh: identity: %w", context.Cause(ctx))
			}
			errs = append(errs, err)
			continue
		}
		b.mu.Lock()
		uname = b.uname
		b.mu.Unlock()
		if uname != "" {
			return uname, nil
		}
	}
	return "", &noHostError{errs: errs}
}
