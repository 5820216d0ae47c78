{
  "require": [
    "test/setup.js"
  ],
  "timeout": 30000,
  "slow": 2000,
  "reporter": "spec",
  "extension": ["test.js"]
}
