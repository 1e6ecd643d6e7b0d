package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
	"github.com/fibercut/fibercut/topology"
)

func newLabManifestsCmd() *cobra.Command {
	var (
		backend, name, topo, out string
		kf                       kubeFlags
	)
	cmd := &cobra.Command{
		Use:   "manifests",
		Short: "Write the lab as Kubernetes objects, to review and apply to a cluster",
		Long: `Write the objects of a lab on Kubernetes as one YAML stream: the namespace
fibercut-NAME, the topology as a ConfigMap, and per DC a headless Service and a
one-replica StatefulSet with a data volume, then the gateway's Deployment and
Service. Every object carries the label fibercut.lab=NAME. Writing them needs no
cluster and no privilege. ` + "`kubectl apply -f`" + ` the file starts the lab, as
` + "`fibercut lab up --backend kubernetes`" + ` does.

The DCs find one another by name (hz-a-0.hz-a.fibercut-NAME.svc), so the lab
survives pods restarting with new addresses. Each DC is pinned to its nodes by
--placement:
  topology  topology.kubernetes.io/region = city, topology.kubernetes.io/zone = DC
  fibercut  fibercut.city = city, fibercut.dc = DC (labels you put on nodes)
  none      anywhere; DCs are still spread over nodes where there are enough

The pods run --image with no privilege and no capability. No registry is
assumed: push fibercut's node image where your nodes can pull it and name it.`,
		Example: `  fibercut lab manifests --image registry.example.com/fibercut-node:v1 --out lab.yaml
  kubectl label node n1 fibercut.city=hangzhou fibercut.dc=hz-a   # and so on, one per DC
  fibercut lab manifests --placement fibercut --image REF | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if backend != backendKubernetes {
				return fmt.Errorf("--backend %q: manifests are for kubernetes; for a Docker lab, `fibercut lab compose` writes a docker-compose file", backend)
			}
			t, err := topology.Resolve(topo)
			if err != nil {
				return err
			}
			objs, opts, err := kf.objects(name, t)
			if err != nil {
				return err
			}
			header := manifestsHeader(objs, opts)
			w := cmd.OutOrStdout()
			if out != "" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if err := kube.WriteYAML(w, objs, header); err != nil {
				return err
			}
			if out != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d objects)\napply it with: kubectl apply -f %s\n", out, len(objs.All()), out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&backend, "backend", backendKubernetes, "lab backend the manifests are for: kubernetes")
	cmd.Flags().StringVar(&name, "name", lab.DefaultName, "name of the lab")
	cmd.Flags().StringVar(&topo, "topology", topology.Default, "built-in topology name or topology file")
	kf.add(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "", "file to write (default: standard output)")
	return cmd
}

// manifestsHeader says, in YAML comments, what the objects are and which
// node labels they expect.
func manifestsHeader(o *kube.Objects, opts kube.Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# fibercut lab %q, topology %s, on Kubernetes: written by `fibercut lab manifests`.\n", o.Namespace.Labels[lab.LabelLab], opts.Topology.Name)
	fmt.Fprintf(&b, "# Namespace %s; every object is labelled %s=%s.\n", o.Namespace.Name, lab.LabelLab, o.Namespace.Labels[lab.LabelLab])
	var city, zone string
	switch opts.Placement {
	case kube.PlacementTopology:
		city, zone = kube.NodeLabelRegion, kube.NodeLabelZone
	case kube.PlacementFibercut:
		city, zone = kube.NodeLabelCity, kube.NodeLabelDC
	}
	if city != "" {
		b.WriteString("# Each DC runs only on nodes labelled:\n")
		for _, dc := range opts.Topology.Datacenters {
			fmt.Fprintf(&b, "#   %-6s %s=%s,%s=%s\n", dc.ID, city, dc.City, zone, dc.ID)
		}
	}
	fmt.Fprintf(&b, "# The DaemonSet %s runs `fibercut agent` on every node, which applies the faults there:\n", kube.RoleAgent)
	b.WriteString("#   it sees the node's processes (hostPID), has NET_ADMIN, SYS_ADMIN and SYS_PTRACE, no seccomp\n")
	b.WriteString("#   filter, and the host's /sys/fs/cgroup; so the namespace admits privileged pods.\n")
	fmt.Fprintf(&b, "# The Secret %s holds a token made for this file, which the agents answer to:\n", kube.AgentSecret)
	b.WriteString("#   keep the file as private as the token. Applying it again to a lab changes the token: restart\n")
	fmt.Fprintf(&b, "#   the agents after (kubectl -n %s rollout restart ds/%s), or use `lab up`, which keeps it.\n", o.Namespace.Name, kube.RoleAgent)
	return b.String()
}
