// Command ajdriver drives the real github.com/choria-io/asyncjobs library
// (v0.3.0) for the jetjobs interop test suite.
//
// Usage: ajdriver <subcommand> [flags]
//
// Subcommands: enqueue, worker, responder, load, cron-add, cron-rm. Every subcommand
// writes machine-readable JSON lines on stdout; logs go to stderr. On error
// a single {"error":"..."} line is printed on stdout and the exit code is
// non-zero (2 for "task not found" in load and for usage errors, 1 otherwise).
//
// See README.md in the module root for details.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	aj "github.com/choria-io/asyncjobs"
	"github.com/nats-io/jsm.go"
	"github.com/nats-io/nats.go"
)

const (
	exitError    = 1
	exitNotFound = 2
	exitUsage    = 2
)

// fastRetry is the retry policy used by the worker unless -retry names a
// built-in asyncjobs policy.
var fastRetry = aj.RetryPolicy{
	Intervals: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond},
	Jitter:    0.1,
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}

	cmd, args := os.Args[1], os.Args[2:]

	var err error
	switch cmd {
	case "enqueue":
		err = enqueueCmd(args)
	case "worker":
		err = workerCmd(args)
	case "responder":
		err = responderCmd(args)
	case "load":
		err = loadCmd(args)
	case "cron-add":
		err = cronAddCmd(args)
	case "cron-rm":
		err = cronRmCmd(args)
	case "scheduler":
		err = schedulerCmd(args)
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		usage()
		fail(exitUsage, fmt.Errorf("unknown subcommand %q", cmd))
	}

	if err != nil {
		code := exitError
		var ce codedError
		if errors.As(err, &ce) {
			code = ce.code
		}
		fail(code, err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ajdriver enqueue|worker|responder|load|cron-add|cron-rm [flags]  (use <subcommand> -h for flags)")
}

type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

// emit writes v as a single JSON line on stdout.
func emit(v any) {
	j, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ajdriver: could not encode output: %v\n", err)
		os.Exit(exitError)
	}
	os.Stdout.Write(append(j, '\n'))
}

func fail(code int, err error) {
	emit(map[string]string{"error": err.Error()})
	fmt.Fprintf(os.Stderr, "ajdriver: %v\n", err)
	os.Exit(code)
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return codedError{exitUsage, err}
	}
	if fs.NArg() > 0 {
		return codedError{exitUsage, fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	return nil
}

// stderrLogger implements aj.Logger; Debugf/Infof only print with -debug.
type stderrLogger struct {
	debug  bool
	prefix string
}

func (l *stderrLogger) logf(level string, format string, v ...any) {
	fmt.Fprintf(os.Stderr, "%s %s %s: %s\n", time.Now().Format("15:04:05.000"), l.prefix, level, fmt.Sprintf(format, v...))
}

func (l *stderrLogger) Debugf(format string, v ...any) {
	if l.debug {
		l.logf("DEBUG", format, v...)
	}
}

func (l *stderrLogger) Infof(format string, v ...any) {
	if l.debug {
		l.logf("INFO", format, v...)
	}
}
func (l *stderrLogger) Warnf(format string, v ...any)  { l.logf("WARN", format, v...) }
func (l *stderrLogger) Errorf(format string, v ...any) { l.logf("ERROR", format, v...) }

func connect(url string, name string) (*nats.Conn, error) {
	if url == "" {
		return nil, codedError{exitUsage, fmt.Errorf("-url is required")}
	}

	return nats.Connect(url,
		nats.UseOldRequestStyle(),
		nats.Name("jetjobs interop ajdriver "+name),
		nats.MaxReconnects(-1),
	)
}

func signingOpts(seedHex string) ([]aj.ClientOpt, error) {
	if seedHex == "" {
		return nil, nil
	}
	seed, err := hex.DecodeString(seedHex)
	if err != nil {
		return nil, fmt.Errorf("invalid -seed-hex: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("invalid -seed-hex: need %d bytes, got %d", ed25519.SeedSize, len(seed))
	}

	return []aj.ClientOpt{aj.TaskSigningKey(ed25519.NewKeyFromSeed(seed))}, nil
}

func verifyOpts(pubHex string, optional bool) []aj.ClientOpt {
	var opts []aj.ClientOpt
	if pubHex != "" {
		opts = append(opts, aj.TaskVerificationKeyHexEncoded(pubHex))
	}
	if optional {
		opts = append(opts, aj.TaskSignaturesOptional())
	}
	return opts
}

func queueOpt(queue string, bind bool) (aj.ClientOpt, error) {
	if queue == "" {
		return nil, codedError{exitUsage, fmt.Errorf("-queue is required")}
	}
	if bind {
		return aj.BindWorkQueue(queue), nil
	}
	return aj.WorkQueue(&aj.Queue{Name: queue}), nil
}

// decodePayload decodes a JSON document into `any`; "" means a nil payload.
func decodePayload(s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("invalid -payload JSON: %w", err)
	}
	return v, nil
}

// ---------------------------------------------------------------- enqueue

func enqueueCmd(args []string) error {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	url := fs.String("url", "", "NATS server URL (required)")
	queue := fs.String("queue", "", "work queue name (required)")
	ttype := fs.String("type", "", "task type (required)")
	payload := fs.String("payload", "", "task payload as JSON; decoded into `any` and re-encoded by asyncjobs with json.Marshal (empty: nil payload)")
	count := fs.Int("count", 1, "number of tasks to create")
	seedHex := fs.String("seed-hex", "", "hex ed25519 seed (32 bytes) to sign tasks with")
	deadline := fs.Duration("deadline", 0, "task deadline relative to now (0: no deadline)")
	maxTries := fs.Int("max-tries", 0, "task max_tries (0: asyncjobs default of 10)")
	depends := fs.String("depends", "", "comma separated task IDs this task depends on")
	loadDeps := fs.Bool("load-deps", false, "set load_dependencies (TaskRequiresDependencyResults)")
	bind := fs.Bool("bind", false, "bind to an existing queue (BindWorkQueue) instead of creating it")
	debug := fs.Bool("debug", false, "debug logging on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ttype == "" {
		return codedError{exitUsage, fmt.Errorf("-type is required")}
	}

	pl, err := decodePayload(*payload)
	if err != nil {
		return codedError{exitUsage, err}
	}

	qopt, err := queueOpt(*queue, *bind)
	if err != nil {
		return err
	}

	sopts, err := signingOpts(*seedHex)
	if err != nil {
		return codedError{exitUsage, err}
	}

	nc, err := connect(*url, "enqueue")
	if err != nil {
		return err
	}
	defer nc.Close()

	copts := []aj.ClientOpt{aj.NatsConn(nc), qopt, aj.CustomLogger(&stderrLogger{debug: *debug, prefix: "enqueue"})}
	copts = append(copts, sopts...)

	client, err := aj.NewClient(copts...)
	if err != nil {
		return err
	}

	var deps []string
	for _, d := range strings.Split(*depends, ",") {
		if d = strings.TrimSpace(d); d != "" {
			deps = append(deps, d)
		}
	}

	for i := 0; i < *count; i++ {
		var topts []aj.TaskOpt
		if *deadline > 0 {
			topts = append(topts, aj.TaskDeadline(time.Now().Add(*deadline)))
		}
		if *maxTries > 0 {
			topts = append(topts, aj.TaskMaxTries(*maxTries))
		}
		if len(deps) > 0 {
			topts = append(topts, aj.TaskDependsOnIDs(deps...))
		}
		if *loadDeps {
			topts = append(topts, aj.TaskRequiresDependencyResults())
		}

		task, err := aj.NewTask(*ttype, pl, topts...)
		if err != nil {
			return err
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = client.EnqueueTask(ctx, task)
		cancel()
		if err != nil {
			return fmt.Errorf("enqueue failed: %w", err)
		}

		emit(map[string]string{"id": task.ID})
	}

	return nil
}

// ----------------------------------------------------------------- worker

type workerHandler struct {
	nc   *nats.Conn
	body []byte
	log  *stderrLogger
}

func (w *workerHandler) succeed(t *aj.Task, spec map[string]any) (any, error) {
	if spec != nil {
		if r, ok := spec["result"]; ok {
			return r, nil
		}
	}
	return map[string]any{"handled_by": "go", "id": t.ID}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *workerHandler) publish(subject string) error {
	if err := w.nc.Publish(subject, w.body); err != nil {
		return err
	}
	return w.nc.Flush()
}

func (w *workerHandler) handle(ctx context.Context, _ aj.Logger, t *aj.Task) (any, error) {
	var spec map[string]any
	if err := json.Unmarshal(t.Payload, &spec); err != nil || spec == nil {
		w.log.Debugf("task %s (tries %d): payload is not an object, succeeding", t.ID, t.Tries)
		return w.succeed(t, nil)
	}

	mode, _ := spec["mode"].(string)
	sleep := time.Duration(-1)
	if v, ok := spec["sleep_ms"].(float64); ok {
		sleep = time.Duration(v) * time.Millisecond
	}

	w.log.Debugf("task %s type %s tries %d mode %q", t.ID, t.Type, t.Tries, mode)

	if mode == "track" {
		if sleep < 0 {
			sleep = 30 * time.Millisecond
		}
		if err := w.publish("track.start"); err != nil {
			return nil, fmt.Errorf("go track publish failed: %w", err)
		}
		serr := sleepCtx(ctx, sleep)
		if err := w.publish("track.end"); err != nil {
			return nil, fmt.Errorf("go track publish failed: %w", err)
		}
		if serr != nil {
			return nil, fmt.Errorf("go interrupted: %w", serr)
		}
		return w.succeed(t, spec)
	}

	if err := sleepCtx(ctx, sleep); err != nil {
		return nil, fmt.Errorf("go interrupted: %w", err)
	}

	switch mode {
	case "fail":
		fails := 0
		if v, ok := spec["fails"].(float64); ok {
			fails = int(v)
		}
		if t.Tries <= fails {
			return nil, fmt.Errorf("go failure %d", t.Tries)
		}
		return w.succeed(t, spec)

	case "terminate":
		return nil, fmt.Errorf("go refused: %w", aj.ErrTerminateTask)

	default: // "succeed", unknown or missing mode
		return w.succeed(t, spec)
	}
}

func workerCmd(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	url := fs.String("url", "", "NATS server URL (required)")
	queue := fs.String("queue", "", "work queue name (required)")
	ttype := fs.String("type", "", "task type to handle (\"\" handles all types)")
	concurrency := fs.Int("concurrency", 10, "ClientConcurrency")
	verifyHex := fs.String("verify-hex", "", "hex ed25519 public key; tasks must be signed by it")
	optional := fs.Bool("optional", false, "TaskSignaturesOptional: accept unsigned tasks")
	bind := fs.Bool("bind", false, "bind to an existing queue (BindWorkQueue) instead of creating it")
	retry := fs.String("retry", "fast", "retry policy: \"fast\" (100ms,200ms,300ms jitter 0.1) or an asyncjobs policy name (default, 1m, 10m, 1h)")
	debug := fs.Bool("debug", false, "debug logging on stderr (one line per handled task)")
	requestReply := fs.Bool("request-reply", false, "route -type with Mux.RequestReply (to CHORIA_AJ.H.T.<type>) instead of the built-in handler")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	qopt, err := queueOpt(*queue, *bind)
	if err != nil {
		return err
	}

	var policy aj.RetryPolicyProvider = fastRetry
	if *retry != "fast" && *retry != "" {
		policy, err = aj.RetryPolicyLookup(*retry)
		if err != nil {
			return codedError{exitUsage, err}
		}
	}

	nc, err := connect(*url, "worker")
	if err != nil {
		return err
	}
	defer nc.Close()

	log := &stderrLogger{debug: *debug, prefix: fmt.Sprintf("worker[%d]", os.Getpid())}

	copts := []aj.ClientOpt{
		aj.NatsConn(nc),
		qopt,
		aj.ClientConcurrency(*concurrency),
		aj.RetryBackoffPolicy(policy),
		aj.CustomLogger(log),
	}
	copts = append(copts, verifyOpts(*verifyHex, *optional)...)

	client, err := aj.NewClient(copts...)
	if err != nil {
		return err
	}

	h := &workerHandler{nc: nc, body: []byte(fmt.Sprintf("go-%d", os.Getpid())), log: log}
	router := aj.NewTaskRouter()
	if *requestReply {
		err = router.RequestReply(*ttype, client)
	} else {
		err = router.HandleFunc(*ttype, h.handle)
	}
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	emit(map[string]bool{"ready": true})

	err = client.Run(ctx, router)
	if err != nil && ctx.Err() == nil {
		return err
	}

	log.Warnf("shutting down")
	return nil
}

// -------------------------------------------------------------- responder

// responderReply answers one request-reply call the way a non-Go service would: by hand, with
// asyncjobs' headers. The task payload is the same mode spec the worker handler reads.
func responderReply(msg *nats.Msg) *nats.Msg {
	resp := nats.NewMsg(msg.Subject)
	failWith := func(header string, format string, a ...any) *nats.Msg {
		resp.Header.Add(header, fmt.Sprintf(format, a...))
		return resp
	}

	ct := msg.Header.Get(aj.RequestReplyContentTypeHeader)
	if ct != aj.RequestReplyTaskType {
		return failWith(aj.RequestReplyError, "go responder: invalid content type %q", ct)
	}
	header := msg.Header.Get(aj.RequestReplyDeadlineHeader)
	deadline, err := time.Parse(time.RFC3339, header)
	if err != nil {
		return failWith(aj.RequestReplyError, "go responder: invalid deadline %q: %v", header, err)
	}
	task := &aj.Task{}
	if err := json.Unmarshal(msg.Data, task); err != nil {
		return failWith(aj.RequestReplyError, "go responder: invalid task: %v", err)
	}

	var spec map[string]any
	_ = json.Unmarshal(task.Payload, &spec)
	mode, _ := spec["mode"].(string)
	switch mode {
	case "terminate":
		return failWith(aj.RequestReplyTerminateError, "go responder refused")
	case "fail":
		fails, _ := spec["fails"].(float64)
		if task.Tries <= int(fails) {
			return failWith(aj.RequestReplyError, "go responder failure %d", task.Tries)
		}
	}

	var body any = map[string]any{
		"handled_by":   "go-responder",
		"id":           task.ID,
		"state":        task.State,
		"tries":        task.Tries,
		"content_type": ct,
		"deadline":     header,
		"left_ms":      time.Until(deadline).Milliseconds(),
	}
	if r, ok := spec["result"]; ok {
		body = r
	}
	resp.Data, err = json.Marshal(body)
	if err != nil {
		return failWith(aj.RequestReplyError, "go responder: %v", err)
	}
	return resp
}

func responderCmd(args []string) error {
	fs := flag.NewFlagSet("responder", flag.ContinueOnError)
	url := fs.String("url", "", "NATS server URL (required)")
	ttype := fs.String("type", "", "routing type to serve (\"\" serves the catchall subject)")
	group := fs.String("group", "ajdriver", "queue group")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	nc, err := connect(*url, "responder")
	if err != nil {
		return err
	}
	defer nc.Close()

	subject := aj.RequestReplySubjectForTaskType(*ttype)
	_, err = nc.QueueSubscribe(subject, *group, func(msg *nats.Msg) {
		if err := msg.RespondMsg(responderReply(msg)); err != nil {
			fmt.Fprintf(os.Stderr, "ajdriver responder: reply failed: %v\n", err)
		}
	})
	if err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	emit(map[string]any{"ready": true, "subject": subject})
	<-ctx.Done()
	return nil
}

// ------------------------------------------------------------------- load

func loadCmd(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	url := fs.String("url", "", "NATS server URL (required)")
	id := fs.String("id", "", "task ID (required)")
	verifyHex := fs.String("verify-hex", "", "hex ed25519 public key; the task must be signed by it")
	optional := fs.Bool("optional", false, "TaskSignaturesOptional: accept an unsigned task with -verify-hex")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return codedError{exitUsage, fmt.Errorf("-id is required")}
	}

	nc, err := connect(*url, "load")
	if err != nil {
		return err
	}
	defer nc.Close()

	// NoStorageInit: nothing is created. The tasks stream is only loaded
	// (PrepareTasks is LoadOrNewStream, so check it exists first).
	mgr, err := jsm.New(nc)
	if err != nil {
		return err
	}
	known, err := mgr.IsKnownStream(aj.TasksStreamName)
	if err != nil {
		return err
	}
	if !known {
		return codedError{exitNotFound, fmt.Errorf("%w: stream %s does not exist", aj.ErrTaskNotFound, aj.TasksStreamName)}
	}

	copts := []aj.ClientOpt{aj.NatsConn(nc), aj.NoStorageInit(), aj.CustomLogger(&stderrLogger{prefix: "load"})}
	copts = append(copts, verifyOpts(*verifyHex, *optional)...)

	client, err := aj.NewClient(copts...)
	if err != nil {
		return err
	}
	if err := client.StorageAdmin().PrepareTasks(false, 1, 0); err != nil {
		return err
	}

	task, err := client.LoadTaskByID(*id)
	if err != nil {
		if errors.Is(err, aj.ErrTaskNotFound) {
			return codedError{exitNotFound, err}
		}
		return err
	}

	emit(task)
	return nil
}

// ------------------------------------------------------------------- cron

func configClient(url string, name string) (*aj.Client, *nats.Conn, error) {
	nc, err := connect(url, name)
	if err != nil {
		return nil, nil, err
	}

	client, err := aj.NewClient(aj.NatsConn(nc), aj.NoStorageInit(), aj.CustomLogger(&stderrLogger{prefix: name}))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}

	// creates CHORIA_AJ_CONFIGURATION and CHORIA_AJ_ELECTIONS if missing, nothing else
	if err := client.StorageAdmin().PrepareConfigurationStore(false, 1); err != nil {
		nc.Close()
		return nil, nil, err
	}

	return client, nc, nil
}

func cronAddCmd(args []string) error {
	fs := flag.NewFlagSet("cron-add", flag.ContinueOnError)
	url := fs.String("url", "", "NATS server URL (required)")
	name := fs.String("name", "", "schedule name (required)")
	schedule := fs.String("schedule", "", "cron schedule, e.g. \"@every 1m\" (required)")
	queue := fs.String("queue", "", "queue the scheduled tasks go to (required)")
	ttype := fs.String("type", "", "task type (required)")
	payload := fs.String("payload", "", "task payload as JSON (empty: nil payload)")
	deadline := fs.Duration("deadline", 0, "per-task deadline offset (0: none; asyncjobs requires >= 30s)")
	maxTries := fs.Int("max-tries", 0, "task max_tries (0: asyncjobs default of 10)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ttype == "" {
		return codedError{exitUsage, fmt.Errorf("-type is required")}
	}

	pl, err := decodePayload(*payload)
	if err != nil {
		return codedError{exitUsage, err}
	}

	var topts []aj.TaskOpt
	if *deadline > 0 {
		topts = append(topts, aj.TaskDeadline(time.Now().Add(*deadline)))
	}
	if *maxTries > 0 {
		topts = append(topts, aj.TaskMaxTries(*maxTries))
	}

	task, err := aj.NewTask(*ttype, pl, topts...)
	if err != nil {
		return err
	}

	client, nc, err := configClient(*url, "cron-add")
	if err != nil {
		return err
	}
	defer nc.Close()

	if err := client.NewScheduledTask(*name, *schedule, *queue, task); err != nil {
		return err
	}

	emit(map[string]bool{"ok": true})
	return nil
}

func cronRmCmd(args []string) error {
	fs := flag.NewFlagSet("cron-rm", flag.ContinueOnError)
	url := fs.String("url", "", "NATS server URL (required)")
	name := fs.String("name", "", "schedule name (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *name == "" {
		return codedError{exitUsage, fmt.Errorf("-name is required")}
	}

	client, nc, err := configClient(*url, "cron-rm")
	if err != nil {
		return err
	}
	defer nc.Close()

	if err := client.RemoveScheduledTask(*name); err != nil {
		return err
	}

	emit(map[string]bool{"ok": true})
	return nil
}
