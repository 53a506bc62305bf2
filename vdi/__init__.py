"""The VDI domain: hosts, golden images, pools, desktops, operations and audit."""
