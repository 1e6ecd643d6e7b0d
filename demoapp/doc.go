// Package demoapp is the money-transfer service that runs on a lab, in which
// every account holds ¥1,000,000 (100,000,000 fen; money is always int64 fen).
//
//   - The ledger ([StartLedger]): one embedded etcd member per DC, read and
//     written through that member alone, a health manager that watches every
//     member's status, and a group-commit writer. A transfer is one transaction that creates
//     xfer/FROM/KEY only if absent and updates both balances under
//     compare-on-revision, so retrying a key never moves money twice.
//   - The node ([RunNode]): the ledger member and the JSON API of one DC
//     (see api.go), plus its health endpoint on every interface.
//   - The gateway ([RunGateway]): the entry layer outside every DC. It homes
//     each user in a DC (units), forwards the user's requests there, and
//     re-homes the user to a healthy DC in another city when the home DC
//     stops answering; it serves the audience page ([WebHandler]).
//   - The load generator ([RunLoad]): virtual users doing transfers through
//     the gateway, every operation written to a [verify.Writer] history.
//
// # Privileges
//
// None: nodes and the gateway listen on unprivileged ports; the load
// generator is an HTTP client.
//
// # Example
//
//	cfg, err := demoapp.NodeConfigFromEnv() // inside a lab container
//	if err != nil {
//		return err
//	}
//	return demoapp.RunNode(ctx, cfg)
package demoapp
