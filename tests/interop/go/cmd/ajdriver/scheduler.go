package main

import (
	"context"
	"flag"
	"fmt"
	"os/signal"
	"sync"
	"syscall"

	aj "github.com/choria-io/asyncjobs"
)

// schedulerCmd runs asyncjobs' TaskScheduler (its election on CHORIA_AJ_ELECTIONS, key
// task_scheduler) until SIGINT/SIGTERM. Prints {"ready":true} once it runs.
func schedulerCmd(args []string) error {
	fs := flag.NewFlagSet("scheduler", flag.ContinueOnError)
	url := fs.String("url", "", "NATS server URL (required)")
	name := fs.String("name", "", "scheduler name (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *name == "" {
		return codedError{exitUsage, fmt.Errorf("-name is required")}
	}

	client, nc, err := configClient(*url, "scheduler")
	if err != nil {
		return err
	}
	defer nc.Close()

	scheduler, err := aj.NewTaskScheduler(*name, client)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	wg := &sync.WaitGroup{}
	emit(map[string]bool{"ready": true})
	err = scheduler.Run(ctx, wg)
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}
