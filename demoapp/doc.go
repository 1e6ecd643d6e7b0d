// Package demoapp is the money-transfer service that runs on a lab: the node
// that runs inside each datacenter container.
//
// For now a node serves only its health endpoint, on every interface, so it
// answers on both the WAN and the management network and names its DC; the
// ledger and the transfer API come later.
//
// # Privileges
//
// None: a node listens on an unprivileged port.
//
// # Example
//
//	cfg, err := demoapp.NodeConfigFromEnv()
//	if err != nil {
//		return err
//	}
//	return demoapp.RunNode(ctx, cfg)
package demoapp
