package redistest

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A Counter is a go-redis hook that counts the commands a client sends, the bytes of their
// arguments and the bytes it reads back.
type Counter struct {
	mu    sync.Mutex
	on    bool // guarded by mu, as are the fields below
	trips int  // round trips: a command, or a whole pipeline
	cmds  []string
	bytes int
	recv  int
}

func (c *Counter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, c: c}, nil
	}
}

type countingConn struct {
	net.Conn
	c *Counter
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.c.mu.Lock()
	if cc.c.on {
		cc.c.recv += n
	}
	cc.c.mu.Unlock()
	return n, err
}

func (c *Counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *Counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds...)
		return next(ctx, cmds)
	}
}

func (c *Counter) add(cmds ...redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return
	}
	c.trips++
	for _, cmd := range cmds {
		c.cmds = append(c.cmds, cmd.Name())
		for _, a := range cmd.Args() {
			switch a := a.(type) {
			case string:
				c.bytes += len(a)
			case []byte:
				c.bytes += len(a)
			default:
				c.bytes += len(fmt.Sprint(a))
			}
		}
	}
}

// Measure runs f with counting on and returns the round trips (a command
// or a whole pipeline), the command names, the bytes of their arguments
// and the bytes read back. Install c with rdb.AddHook(c) before the client
// dials, so its connections are wrapped.
func (c *Counter) Measure(f func()) (trips int, cmds []string, sent, recv int) {
	c.mu.Lock()
	c.on, c.trips, c.cmds, c.bytes, c.recv = true, 0, nil, 0, 0
	c.mu.Unlock()
	f()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.trips, c.cmds, c.bytes, c.recv
}
