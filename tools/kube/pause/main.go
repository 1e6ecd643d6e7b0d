// Command pause is the harness's pod sandbox image, as Kubernetes' own
// pause image is elsewhere: it holds a pod's namespaces and does nothing
// until it is told to stop. It is built statically and imported into each
// node's containerd, since no registry is reachable.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
