import Foundation
import Testing

@testable import Store

@Suite struct SQLScriptTests {
    @Test func splitsOnSemicolonsOutsideQuotesBodiesAndComments() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE a (note text DEFAULT 'x; y', "odd;name" int);
            /* block; /* nested; */ still comment; */
            INSERT INTO a VALUES ('it''s; fine', 1);
            SELECT E'\\'; still string';
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('c', 'x;y');
              RETURN NULL;
            END;
            $$;
            CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;
            PREPARE p AS SELECT $1::int;
            -- trailing comment only
            """
        let statements = SQLScript.statements(in: sql)
        #expect(statements.count == 6)
        #expect(statements[0].hasPrefix("-- a comment; with a semicolon\nCREATE TABLE a"))
        #expect(statements[0].hasSuffix("\"odd;name\" int)"))
        #expect(statements[1].hasSuffix("VALUES ('it''s; fine', 1)"))
        #expect(statements[2] == "SELECT E'\\'; still string'")
        #expect(statements[3].hasSuffix("END;\n$$"))
        #expect(statements[4] == "CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$")
        #expect(statements[5] == "PREPARE p AS SELECT $1::int")
    }

    @Test func theDomainMigrationSplitsIntoWholeStatements() {
        let statements = SQLScript.statements(in: Migration.domain.sql)
        #expect(statements.count > 20)
        #expect(statements.allSatisfy { !$0.isEmpty })
        #expect(statements.filter { $0.contains("$$") }.allSatisfy { $0.components(separatedBy: "$$").count == 3 })
    }
}
