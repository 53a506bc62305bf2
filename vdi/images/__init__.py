"""Golden image files: the tiny built-in image and qcow2 imports. No Django in the builders."""
