// How `cds serve` starts this project (CAP loads a project's server.js in place of its own).
// Two things differ from CAP's default: the server listens on loopback only (it is a test
// server, not for the network), and a new database file gets the model's tables first (a file
// that exists keeps its data: restarting the server loses nothing).
const cds = require('@sap/cds')
const express = require('express')
const fs = require('node:fs')

module.exports = async function server(options) {
  if (!fs.existsSync(cds.env.requires.db.credentials.url)) await cds.deploy('*').to('db')
  const app = express()
  const listen = app.listen.bind(app)
  app.listen = (port) => listen(port, '127.0.0.1')
  return cds.server({ ...options, app })
}
