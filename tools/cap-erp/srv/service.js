// A create whose key exists is CAP's ENTITY_ALREADY_EXISTS, which its HTTP layer answers with
// 400. Node's built-in SQLite driver raises an error CAP does not translate, answered with 500,
// which a client would take for a server fault and retry: this check gives CAP's own answer.
// Every create and update of an order also writes a change document (db/schema.cds), in the
// same transaction: a write that is rolled back leaves none.
const cds = require('@sap/cds')

module.exports = class MaintenanceOrderService extends cds.ApplicationService {
  init() {
    const { MaintenanceOrder } = this.entities
    this.before('CREATE', MaintenanceOrder, async (req) => {
      const key = { MaintenanceOrder: req.data.MaintenanceOrder }
      if (await SELECT.one.from(MaintenanceOrder).columns('MaintenanceOrder').where(key)) {
        req.reject(400, 'ENTITY_ALREADY_EXISTS', [req.data.MaintenanceOrder])
      }
    })
    this.after(['CREATE', 'UPDATE'], MaintenanceOrder, async (_, req) => {
      const order = req.data.MaintenanceOrder ?? req.params.at(-1)?.MaintenanceOrder ?? req.params.at(-1)
      await INSERT.into('s4.MaintenanceOrderChange').entries({
        ID: cds.utils.uuid(),
        MaintenanceOrder: order,
        Kind: req.event,
      })
    })
    return super.init()
  }
}
