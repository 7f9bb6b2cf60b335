// SPDX-License-Identifier: Apache-2.0

// Command govdriver drives the real choria governor library
// (github.com/choria-io/go-choria/providers/governor/streams v0.29.4) for the jetjobs
// interop tests: campaigns on a governor, and choria's own manager test sequence.
//
// Usage: govdriver <subcommand> [flags]
//
// Subcommands: campaign, start, new, info, evict, last-active, list. Every subcommand
// writes JSON lines on stdout. On error a single {"error":"...","code":N} line is printed
// (code: the JetStream error code, 0 if none) and the exit code is 2 for "unknown governor"
// and usage errors, 1 otherwise. See README.md in the module root.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	governor "github.com/choria-io/go-choria/providers/governor/streams"
	"github.com/nats-io/jsm.go/api"
	"github.com/nats-io/nats.go"
)

func main() {
	if len(os.Args) < 2 {
		fail(2, errors.New("usage: govdriver campaign|start|new|info|evict|last-active|list [flags]"))
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	url := fs.String("url", nats.DefaultURL, "NATS URL")
	name := fs.String("name", "", "governor name")
	subject := fs.String("subject", "", "campaign subject (default: the library's $GOVERNOR.campaign.<name>)")
	count := fs.Int("count", 1, "campaign: concurrent campaigns")
	holdMs := fs.Int("hold-ms", 50, "campaign: how long each holds its slot")
	intervalMs := fs.Int("interval-ms", 250, "campaign/start: pause between tries while full")
	label := fs.String("label", "go", "campaign: body of the gov.enter/gov.exit messages")
	maxWait := fs.Duration("max-wait", time.Minute, "campaign/start: give up after this")
	holder := fs.String("holder", "govdriver", "start: the lease's holder name")
	limit := fs.Uint64("limit", 0, "new: the capacity (0: load only, never create)")
	maxAge := fs.Duration("max-age", 0, "new: leases evicted after this (0: never)")
	replicas := fs.Uint("replicas", 0, "new: stream replicas")
	update := fs.Bool("update", false, "new: update an existing governor to these settings")
	seq := fs.Uint64("seq", 0, "evict: the lease's sequence")
	collective := fs.String("collective", "choria", "list: the collective")
	_ = fs.Parse(args)

	nc, err := nats.Connect(*url, nats.UseOldRequestStyle())
	if err != nil {
		fail(1, err)
	}
	defer nc.Close()
	opts := func() []governor.Option {
		o := []governor.Option{governor.WithInterval(time.Duration(*intervalMs) * time.Millisecond)}
		if *subject != "" {
			o = append(o, governor.WithSubject(*subject))
		}
		return o
	}

	switch cmd {
	case "campaign":
		err = campaign(nc, *name, opts, *count, time.Duration(*holdMs)*time.Millisecond, *label, *maxWait)
	case "start":
		ctx, cancel := context.WithTimeout(context.Background(), *maxWait)
		defer cancel()
		// The finisher is not called: the lease stays for another process to see or evict.
		_, s, e := governor.New(*name, nc, opts()...).Start(ctx, *holder)
		err = e
		if e == nil {
			emit(map[string]any{"seq": s})
		}
	case "new":
		var mo []governor.Option
		if *subject != "" {
			mo = append(mo, governor.WithSubject(*subject))
		}
		m, e := governor.NewManager(*name, *limit, *maxAge, *replicas, nc, *update, mo...)
		err = e
		if e == nil {
			err = describe(m)
		}
	case "info":
		m, e := governor.NewManager(*name, 0, 0, 0, nc, false)
		err = e
		if e == nil {
			err = describe(m)
		}
	case "evict":
		m, e := governor.NewManager(*name, 0, 0, 0, nc, false)
		err = e
		if e == nil {
			var holderName string
			holderName, err = m.Evict(*seq)
			if err == nil {
				emit(map[string]any{"name": holderName})
			}
		}
	case "last-active":
		m, e := governor.NewManager(*name, 0, 0, 0, nc, false)
		err = e
		if e == nil {
			var t time.Time
			t, err = m.LastActive()
			if err == nil {
				emit(map[string]any{"zero": t.IsZero(), "unix_ms": t.UnixMilli()})
			}
		}
	case "list":
		names, e := governor.List(nc, *collective)
		err = e
		if e == nil {
			if names == nil {
				names = []string{}
			}
			emit(map[string]any{"governors": names})
		}
	default:
		fail(2, fmt.Errorf("unknown subcommand %q", cmd))
	}
	if err != nil {
		if err.Error() == "unknown governor" {
			fail(2, err)
		}
		fail(1, err)
	}
}

// describe prints what choria's Manager reports about a governor.
func describe(m governor.Manager) error {
	active, err := m.Active()
	if err != nil {
		return err
	}
	emit(map[string]any{
		"name":       m.Name(),
		"limit":      m.Limit(),
		"max_age_ms": m.MaxAge().Milliseconds(),
		"subject":    m.Subject(),
		"replicas":   m.Replicas(),
		"stream":     m.Stream().Name(),
		"active":     active,
	})
	return nil
}

// campaign runs count campaigns at once, each with its own Governor as choria's own test does
// (one instance runs one campaign at a time); each holds its slot for hold, publishing label on
// gov.enter once it has the slot and on gov.exit before giving it back (the same connection
// carries the release, so an observer sees the exit first).
func campaign(nc *nats.Conn, name string, opts func() []governor.Option, count int, hold time.Duration, label string, maxWait time.Duration) error {
	var wg sync.WaitGroup
	var holding, peak, done atomic.Int64
	errs := make(chan error, count)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), maxWait)
	defer cancel()
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fin, _, err := governor.New(name, nc, opts()...).Start(ctx, fmt.Sprintf("%s-%d", label, i))
			if err != nil {
				errs <- err
				return
			}
			now := holding.Add(1)
			for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
			}
			_ = nc.Publish("gov.enter", []byte(label))
			time.Sleep(hold)
			holding.Add(-1)
			_ = nc.Publish("gov.exit", []byte(label))
			if err := fin(); err != nil {
				errs <- err
				return
			}
			if err := fin(); err != nil {
				errs <- fmt.Errorf("a second finish must do nothing: %w", err)
				return
			}
			done.Add(1)
		}()
	}
	wg.Wait()
	close(errs)
	texts := []string{}
	for err := range errs {
		texts = append(texts, err.Error())
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	emit(map[string]any{
		"lang": label, "campaigns": count, "done": done.Load(), "peak": peak.Load(),
		"errors": texts, "elapsed_ms": time.Since(start).Milliseconds(),
	})
	if len(texts) > 0 {
		return fmt.Errorf("%d campaigns failed, first: %s", len(texts), texts[0])
	}
	return nil
}

func emit(v any) {
	line, _ := json.Marshal(v)
	fmt.Println(string(line))
}

func fail(code int, err error) {
	jsCode := 0
	var apiErr *api.ApiError
	var apiErrValue api.ApiError
	if errors.As(err, &apiErr) {
		jsCode = int(apiErr.NatsErrorCode())
	} else if errors.As(err, &apiErrValue) {
		jsCode = int(apiErrValue.NatsErrorCode())
	}
	emit(map[string]any{"error": err.Error(), "code": jsCode})
	os.Exit(code)
}
