// Package kube maps a fibercut lab onto Kubernetes objects: a namespace
// fibercut-LAB, and in it a headless Service and a one-replica StatefulSet
// with a data volume per DC, pinned to its city's and its own nodes, and a
// Deployment and a Service for the gateway. Every object carries the label
// fibercut.lab=LAB.
//
// [Build] returns the objects and [WriteYAML] writes them for an SRE to
// review and apply; building them needs no privilege and no cluster.
//
// The DCs find one another by name ([PeerHost]), not by address: a pod's
// address changes each time it restarts.
package kube
