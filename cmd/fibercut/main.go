// Command fibercut builds a lab of datacenters spread over cities as Docker
// containers, cuts the fiber between them, and proves how long users could not
// pay (RTO) and that no money was lost (RPO = 0).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
