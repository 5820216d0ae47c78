{
  # uffd_sanitize: "address" or "thread" builds the addon with that sanitizer and symbols
  # (scripts/sanitize.sh, docs/development.md); "" (the default) is the release build.
  "variables": { "uffd_sanitize%": "" },
  "targets": [
    {
      "target_name": "userfaultfd",
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/addon.cc",
            "native/errors.cc",
            "native/userfaultfd.cc",
            "native/fault_reader.cc",
            "native/page_source.cc",
            "native/region.cc",
            "native/fdpass.cc",
            "native/sync_reader.cc",
            "native/fast_ioctl.cc",
            "native/working_set.cc",
            "native/prefetcher.cc",
            "native/local_uffds.cc",
            "native/reader_claims.cc",
            "native/dirty_tracker.cc",
            "native/snapshot_writer.cc",
            "native/teardown_registry.cc",
            "native/fork_guard.cc"
          ]
        }, {
          # Elsewhere the package installs with an empty addon and runs on the simulator.
          "sources": ["native/unsupported.cc"]
        }],
        ["uffd_sanitize=='address'", {
          "cflags_cc": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address"]
        }],
        ["uffd_sanitize=='thread'", {
          "cflags_cc": ["-fsanitize=thread", "-g", "-O1"],
          "ldflags": ["-fsanitize=thread"]
        }]
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES" },
      "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
    }
  ]
}
